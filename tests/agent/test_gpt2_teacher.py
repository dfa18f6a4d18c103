"""The GPT-2 teacher: cached batched scoring equals one full forward per action; offline loading."""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from agent.gpt2_teacher import Gpt2Teacher, TeacherWeightsError, load_gpt2
from agent.policy import Observation
from agent.prompts import teacher_prompt
from data.tokenizer import gpt2_tokenizer

TAXI = ("south", "north", "east", "west", "pickup", "dropoff")


def observation(text: str, actions=TAXI, task: str = "Deliver the passenger.") -> Observation:
    return Observation("Taxi-v4", 2, text, tuple(actions), state=0, task=task)


def reference_log_probs(model, prompt: str, actions) -> torch.Tensor:
    """One full forward per action, no cache, no padding: the definition."""
    tokenizer = gpt2_tokenizer()
    prompt_ids = tokenizer(prompt).input_ids
    scores = []
    for action in actions:
        action_ids = tokenizer(" " + action).input_ids
        ids = torch.tensor([prompt_ids + action_ids])
        logp = F.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
        scores.append(sum(logp[len(prompt_ids) - 1 + t, a] for t, a in enumerate(action_ids)))
    return torch.stack(scores)


@pytest.fixture(scope="module")
def tiny():
    return Gpt2Teacher.load("tiny")


def test_cached_batched_scores_equal_one_forward_per_action(tiny):
    observations = [observation("+---+\n|R:G|\n+---+", TAXI),
                    observation("a much longer observation " * 5, ("left", "down", "right", "up")),
                    observation("short", ("stick", "hit", "dropoff"))]
    prompts = [teacher_prompt(o) for o in observations]
    scores = tiny.action_log_probs(prompts, [list(o.legal_actions) for o in observations])
    with torch.no_grad():
        for prompt, o, got in zip(prompts, observations, scores, strict=True):
            expected = reference_log_probs(tiny.model, prompt, o.legal_actions)
            torch.testing.assert_close(got.double(), expected, atol=1e-4, rtol=0)


def test_decisions_are_distributions_over_the_legal_actions(tiny):
    decisions = tiny.decide([observation("x"), observation("y", ("left", "right"))], greedy=True)
    assert [len(d.probs) for d in decisions] == [6, 2]
    assert all(abs(sum(d.probs) - 1) < 1e-9 for d in decisions)
    assert all(d.action == max(range(len(d.probs)), key=d.probs.__getitem__) for d in decisions)


def test_tiny_teacher_is_seeded_and_reloads_from_its_folder(tmp_path):
    first, second = load_gpt2("tiny"), load_gpt2("tiny")
    assert torch.equal(first.transformer.wte.weight, second.transformer.wte.weight)
    assert first.config.vocab_size == 50257


def test_missing_weights_name_the_choices(tmp_path):
    with pytest.raises(TeacherWeightsError, match="--teacher tiny"):
        load_gpt2(str(tmp_path))  # an empty folder


def test_unreachable_hub_gives_the_clear_error_offline():
    code = "from agent.gpt2_teacher import load_gpt2; load_gpt2('distilgpt2')"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode != 0
    assert "GPT-2 weights 'distilgpt2' not found" in result.stderr


def test_the_auto_teacher_falls_back_to_tiny_offline_with_one_line():
    code = "from aegis.teachers import make_teacher; print(make_teacher('auto').name)"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "gpt2:tiny"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "tiny stand-in" in lines[0] and "--teacher gpt2|tiny|oracle" in lines[0]
