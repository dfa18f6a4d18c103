"""The GPT-2 teacher: scores each legal action by the log-probability GPT-2 gives its tokens after the prompt.

P(action) = softmax over the legal actions of Σ log p(action token_t | prompt, earlier action tokens), with
log_softmax taken over the whole vocabulary before gathering. A batch of prompts runs through GPT-2 once (left
padded, with a KV cache); every candidate continuation of every prompt then runs as one batch over the cached
prompts, so a decision costs one prompt pass plus one short pass, not one full pass per action.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.utils import logging as transformers_logging

from agent.policy import Decision, Observation, decision_from_scores
from agent.prompts import teacher_prompt
from data.tokenizer import gpt2_tokenizer

HUB_IDS = ("gpt2", "distilgpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
TINY_DIR = Path("runs") / "teachers" / "tiny"
TINY_CONFIG = dict(n_layer=2, n_head=2, n_embd=64, n_positions=512, vocab_size=50257)
TINY_SEED = 1234


class TeacherWeightsError(RuntimeError):
    """GPT-2 weights could not be found; the message names the choices."""


def _missing_weights(spec: str, why: str) -> TeacherWeightsError:
    return TeacherWeightsError(
        f"GPT-2 weights '{spec}' not found ({why}). Choose --teacher tiny (random, offline), oracle or oracle:EPS "
        f"(scripted expert), a folder written by save_pretrained, or one of {', '.join(HUB_IDS)} once the Hugging "
        "Face hub is reachable (downloads are cached for later offline use)")


def tiny_teacher_dir(folder: Path = TINY_DIR) -> Path:
    """Returns the folder of the `tiny` teacher (GPT-2 architecture, tiny, random, seeded), creating it once."""
    if not (folder / "config.json").is_file():
        torch.manual_seed(TINY_SEED)
        model = GPT2LMHeadModel(GPT2Config(**TINY_CONFIG))
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        model.save_pretrained(tmp)
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            tmp.rename(folder)
        except OSError:  # another process created it first
            pass
    return folder


def load_gpt2(spec: str, cached_only: bool = False) -> GPT2LMHeadModel:
    """Returns GPT-2 weights for `spec`: "tiny", a local save_pretrained folder, or a Hugging Face hub id (from the
    local cache, else the hub unless `cached_only`)."""
    transformers_logging.disable_progress_bar()  # the agent's own display reports progress
    if spec == "tiny":
        return GPT2LMHeadModel.from_pretrained(tiny_teacher_dir())
    if Path(spec).is_dir():
        if not (Path(spec) / "config.json").is_file():
            raise _missing_weights(spec, "the folder has no config.json")
        return GPT2LMHeadModel.from_pretrained(spec)
    if spec not in HUB_IDS and "/" not in spec:
        raise _missing_weights(spec, "neither a folder nor a known hub id")
    try:
        return GPT2LMHeadModel.from_pretrained(spec, local_files_only=True)
    except OSError as e:
        if cached_only:
            raise _missing_weights(spec, "not in the local cache") from e
    try:
        return GPT2LMHeadModel.from_pretrained(spec)
    except OSError as e:
        raise _missing_weights(spec, "not in the local cache and the hub is unreachable") from e


@dataclass
class Gpt2Teacher:
    """A GPT-2 model acting as a policy over legal action names (temperature sampling or argmax)."""

    model: GPT2LMHeadModel
    name: str = "gpt2"
    temperature: float = 1.0
    seed: int = 0
    device: torch.device = torch.device("cpu")
    version = None  # teachers are not registered model versions

    def __post_init__(self):
        self.model = self.model.to(self.device).eval()
        self.tokenizer = gpt2_tokenizer()
        self.rng = np.random.default_rng(self.seed)
        self._action_tokens: dict[str, list[int]] = {}

    @classmethod
    def load(cls, spec: str, temperature: float = 1.0, seed: int = 0, device: str | None = None,
             cached_only: bool = False) -> "Gpt2Teacher":
        """Returns a teacher with weights for `spec` (see load_gpt2), named after it."""
        return cls(load_gpt2(spec, cached_only), name=f"gpt2:{spec}" if spec != "gpt2" else "gpt2",
                   temperature=temperature, seed=seed, device=torch.device(device or "cpu"))

    def _tokens(self, action: str) -> list[int]:
        if action not in self._action_tokens:
            self._action_tokens[action] = self.tokenizer(" " + action).input_ids  # after "Action:", with a space
        return self._action_tokens[action]

    @torch.no_grad()
    def action_log_probs(self, prompts: list[str], actions: list[list[str]]) -> list[torch.Tensor]:
        """Returns, per prompt, the summed log-probability of each candidate action's tokens (fp32, (A,))."""
        device = self.device
        encoded = [self.tokenizer(p).input_ids for p in prompts]
        lengths = torch.tensor([len(e) for e in encoded], device=device)
        width = int(lengths.max())
        eos = self.tokenizer.eos_token_id
        ids = torch.full((len(prompts), width), eos, dtype=torch.long, device=device)
        mask = torch.zeros((len(prompts), width), dtype=torch.long, device=device)
        for i, e in enumerate(encoded):  # left padding: every prompt ends at the last column
            ids[i, width - len(e):] = torch.tensor(e, device=device)
            mask[i, width - len(e):] = 1
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        first = F.log_softmax(out.logits[:, -1].float(), dim=-1)  # (N, V): the first action token

        rows = torch.tensor([i for i, acts in enumerate(actions) for _ in acts], device=device)
        candidates = [self._tokens(a) for acts in actions for a in acts]
        longest = max(len(c) for c in candidates)
        cand = torch.full((len(candidates), longest), eos, dtype=torch.long, device=device)
        cand_mask = torch.zeros_like(cand)
        for r, c in enumerate(candidates):
            cand[r, :len(c)] = torch.tensor(c, device=device)
            cand_mask[r, :len(c)] = 1
        scores = first[rows, cand[:, 0]]  # (R,)
        if longest > 1:
            cache = out.past_key_values
            cache.batch_select_indices(rows)  # one cached prompt per candidate row
            steps = longest - 1
            follow = self.model(
                input_ids=cand[:, :steps],
                attention_mask=torch.cat((mask[rows], cand_mask[:, :steps]), dim=1),
                position_ids=lengths[rows, None] + torch.arange(steps, device=device),
                past_key_values=cache, use_cache=False)
            logp = F.log_softmax(follow.logits.float(), dim=-1)  # (R, steps, V)
            later = logp.gather(-1, cand[:, 1:, None]).squeeze(-1) * cand_mask[:, 1:]
            scores = scores + later.sum(-1)
        return list(scores.split([len(a) for a in actions]))

    def decide(self, observations: list[Observation], greedy: bool = False) -> list[Decision]:
        """Returns one decision per observation: the distribution over its legal actions and the chosen index."""
        scores = self.action_log_probs([teacher_prompt(o) for o in observations],
                                       [list(o.legal_actions) for o in observations])
        return [decision_from_scores(s.double().cpu().numpy(), self.rng, greedy, self.temperature) for s in scores]
