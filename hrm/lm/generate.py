"""Answer prompts with a trained HRM × LM: `python -m hrm.lm.generate`.

    python -m hrm.lm.generate --prompt "What is 12 + 7?" --dataset synthetic
    python -m hrm.lm.generate --prompts_file questions.txt --checkpoint runs/lm/synthetic/last.pt --batch_size 64
    python -m hrm.lm.generate --prompt "What is 12 + 7?" --temperature 0.8 --top_k 5 --top_p 0.9 --seed 1

Prints one line per prompt: the prompt, then the answer. The HRM halts adaptively (Q-halt > Q-continue; --no-adaptive
runs every segment) and the decoder keeps a KV cache (--no-kv-cache recomputes it, for comparison). A missing
checkpoint, an unknown dataset or a character the tokenizer cannot read ends in one line on stderr and exit 2.
"""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from hrm.checkpoint import CheckpointError
from hrm.cli import ConfigError, Range, parse_args
from hrm.lm.engine import Generator
from hrm.lm.tokenizer import TokenizerError
from hrm.lm.train import DATASETS, normalize_argv

PROG = "python -m hrm.lm.generate"


@dataclass(frozen=True)
class GenerateArgs:
    """Answer prompts with an HRM × LM checkpoint written by python -m hrm.lm.train."""

    prompt: str | None = None
    """One prompt, e.g. "What is 12 + 7?"."""
    prompts_file: str | None = None
    """A text file of prompts, one per line, answered in batches."""
    dataset: str = "synthetic"
    """The dataset the checkpoint was trained on (it must match)."""
    checkpoint: str = "runs/lm/synthetic/last.pt"
    max_new_tokens: Annotated[int, Range(1)] = 16
    temperature: Annotated[float, Range(0)] = 0.0
    """0: greedy; otherwise sample from the logits divided by this."""
    top_k: Annotated[int, Range(0)] = 0
    """Sample only among the k most likely tokens (0: all)."""
    top_p: Annotated[float, Range(0, 1, open_low=True)] = 1.0
    """Sample only among the most likely tokens whose probabilities add up to top_p."""
    batch_size: Annotated[int, Range(1)] = 64
    adaptive: bool = True
    """Halt the HRM once Q-halt > Q-continue (else run every segment)."""
    kv_cache: bool = True
    seed: int = 0
    """Seeds sampling."""
    device: str | None = None


def read_prompts(args: GenerateArgs) -> list[str]:
    """Returns --prompt and the lines of --prompts_file; raises ConfigError if there are none."""
    prompts = [args.prompt] if args.prompt else []
    if args.prompts_file:
        try:
            prompts += [line.strip() for line in Path(args.prompts_file).read_text().splitlines() if line.strip()]
        except OSError as e:
            raise ConfigError(f"cannot read --prompts-file {args.prompts_file}: {e.strerror}") from None
    if not prompts:
        raise ConfigError('give --prompt "What is 12 + 7?" or --prompts-file FILE')
    return prompts


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m hrm.lm.generate`; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(GenerateArgs, normalize_argv(argv), prog=PROG)
    try:
        if args.dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {args.dataset!r}; choose one of: {', '.join(DATASETS)}")
        prompts = read_prompts(args)
        try:
            generator = Generator.from_checkpoint(args.checkpoint, args.device)
        except CheckpointError as e:
            raise CheckpointError(f"{e} (train one with: python -m hrm.lm.train --save_dir DIR)") from None
        if generator.dataset != args.dataset:
            raise ConfigError(f"{args.checkpoint} was trained on {generator.dataset!r}, not {args.dataset!r}")
        for i in range(0, len(prompts), args.batch_size):
            chunk = prompts[i:i + args.batch_size]
            out = generator.generate(chunk, args.max_new_tokens, args.temperature, args.top_k, args.top_p,
                                     kv_cache=args.kv_cache, adaptive=args.adaptive, seed=args.seed + i)
            for prompt, answer in zip(chunk, out.answers, strict=True):
                print(f"{prompt} {answer}", flush=True)
    except (ConfigError, CheckpointError, TokenizerError, ValueError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
