"""GPT-2 teacher scoring speed: cached batched scoring vs one full forward per action, side by side in one run.

    python bench/teacher.py [--repeats 5]

GPT-2-124M architecture with random weights (timing does not depend on the weights), an 80-token prompt and 6
actions (Taxi's). Prints ms per decision for both, their ratio, and decisions/s at batch 1 and batch 16.
"""

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.gpt2_teacher import Gpt2Teacher  # noqa: E402
from agent.policy import Observation  # noqa: E402
from agent.prompts import teacher_prompt  # noqa: E402
from data.tokenizer import gpt2_tokenizer  # noqa: E402

ACTIONS = ("south", "north", "east", "west", "pickup", "dropoff")


def observation_of_tokens(n_tokens: int, seed: int) -> Observation:
    """Returns an observation whose teacher prompt is exactly `n_tokens` GPT-2 tokens long."""
    tokenizer = gpt2_tokenizer()
    base = Observation("Taxi-v4", 2, "", ACTIONS, state=seed, task="Drive the taxi.")
    overhead = len(tokenizer(teacher_prompt(base)).input_ids)
    words = " ".join(f"cell{(seed * 7 + i) % 10}" for i in range(n_tokens))
    ids = tokenizer(words).input_ids[: n_tokens - overhead]
    text = tokenizer.decode(ids)
    obs = Observation("Taxi-v4", 2, text, ACTIONS, state=seed, task="Drive the taxi.")
    return obs


@torch.no_grad()
def one_forward_per_action(model, prompt: str, actions) -> torch.Tensor:
    """Returns summed action log-probs the naive way: a full forward of prompt + action for every action."""
    tokenizer = gpt2_tokenizer()
    prompt_ids = tokenizer(prompt).input_ids
    scores = []
    for action in actions:
        action_ids = tokenizer(" " + action).input_ids
        logp = F.log_softmax(model(input_ids=torch.tensor([prompt_ids + action_ids])).logits[0], dim=-1)
        scores.append(sum(logp[len(prompt_ids) - 1 + t, a] for t, a in enumerate(action_ids)))
    return torch.stack(scores)


def timed(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    teacher = Gpt2Teacher(GPT2LMHeadModel(GPT2Config()), name="gpt2-124m-random")
    print(f"GPT-2 124M architecture ({sum(p.numel() for p in teacher.model.parameters()) / 1e6:.1f}M parameters, "
          f"random weights) | threads {torch.get_num_threads()}")
    obs = [observation_of_tokens(80, seed) for seed in range(16)]
    prompt = teacher_prompt(obs[0])
    print(f"prompt {len(gpt2_tokenizer()(prompt).input_ids)} tokens, {len(ACTIONS)} actions")

    naive = timed(lambda: one_forward_per_action(teacher.model, prompt, ACTIONS), args.repeats)
    cached = timed(lambda: teacher.action_log_probs([prompt], [list(ACTIONS)]), args.repeats)
    print(f"one forward per action: {naive * 1e3:7.1f} ms/decision")
    print(f"cached, batched:        {cached * 1e3:7.1f} ms/decision   → {naive / cached:.2f}× faster")
    batch1 = timed(lambda: teacher.decide(obs[:1]), args.repeats)
    batch16 = timed(lambda: teacher.decide(obs), args.repeats)
    print(f"decide(): batch 1 {1 / batch1:6.1f} decisions/s | batch 16 {16 / batch16:6.1f} decisions/s "
          f"({batch1 * 16 / batch16:.2f}× the batch-1 rate)")


if __name__ == "__main__":
    main()
