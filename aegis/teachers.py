"""Teacher specs as a user types them (`--teacher auto|gpt2|distilgpt2|gpt2-medium|PATH|tiny|oracle|oracle:EPS`)."""

import os
import socket
import sys

from agent.gpt2_teacher import Gpt2Teacher, TeacherWeightsError
from agent.oracle import OracleTeacher
from agent.policy import Policy


def make_teacher(spec: str, seed: int = 0, temperature: float = 1.0, device: str | None = None) -> Policy:
    """Returns the teacher policy for `spec`; raises TeacherWeightsError (agent.gpt2_teacher) or ValueError.

    "auto" is real GPT-2 when its weights are cached or the hub answers, otherwise the `tiny` stand-in, with one line
    on stderr saying so; "gpt2" insists on the real weights and fails clearly without them."""
    if spec == "auto":
        try:
            return Gpt2Teacher.load("gpt2", temperature, seed, device, cached_only=not hub_answers())
        except TeacherWeightsError:
            print("teacher auto: GPT-2's weights are not cached and the Hugging Face hub does not answer, so the tiny "
                  "stand-in (GPT-2 architecture, random weights) teaches; choose with --teacher gpt2|tiny|oracle",
                  file=sys.stderr)
            return Gpt2Teacher.load("tiny", temperature=temperature, seed=seed, device=device)
    if spec == "oracle" or spec.startswith("oracle:"):
        epsilon = 0.0
        if spec != "oracle":
            try:
                epsilon = float(spec.split(":", 1)[1])
            except ValueError:
                raise ValueError(f"teacher {spec!r}: write oracle:EPS with EPS in [0, 1], e.g. oracle:0.5") from None
            if not 0.0 <= epsilon <= 1.0:
                raise ValueError(f"teacher {spec!r}: EPS must lie in [0, 1]")
        return OracleTeacher(epsilon=epsilon, seed=seed)
    return Gpt2Teacher.load(spec, temperature=temperature, seed=seed, device=device)


def hub_answers(timeout: float = 3.0) -> bool:
    """Returns whether the Hugging Face hub can be reached now (a TCP connect; False when HF_HUB_OFFLINE is set)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False
