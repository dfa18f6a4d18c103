"""A question-answer text dataset for the HRM × LM: a file of "prompt<TAB>answer" lines and a BPE tokenizer trained
on it (`--dataset text --text_file qa.tsv`).

The same interface as `hrm.lm.arithmetic.ArithmeticTask`, so training, evaluation and generation need no branch:
every tenth pair (chosen by a hash of its prompt, so a repeated prompt stays on one side) is held out, and there is
no out-of-distribution split. Text tokens carry no Abacus indices (all 0).
"""

import random
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from hrm.lm.tokenizer import BpeTokenizer
from hrm.losses import IGNORE_INDEX


class TextDataError(ValueError):
    """The text file is missing or holds no usable "prompt<TAB>answer" line; the message says which."""


@dataclass(frozen=True)
class TextConfig:
    """Where the pairs come from and how they are tokenised."""

    path: str
    vocab_size: int = 1000
    """BPE vocabulary size (special ids included)."""
    seed: int = 0
    reverse_answer: bool = False  # read by generation like the arithmetic config's; text answers are never reversed


def read_pairs(path: str) -> list[tuple[str, str]]:
    """Returns the (prompt, answer) pairs of a "prompt<TAB>answer" file; raises TextDataError if there are none."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise TextDataError(f"cannot read --text_file {path}: {e.strerror}") from None
    pairs = [tuple(line.split("\t", 1)) for line in lines if "\t" in line]
    if len(pairs) < 2:
        raise TextDataError(f"--text_file {path} needs at least 2 lines of the form prompt<TAB>answer")
    return pairs


class TextTask:
    """Prompt-answer pairs as batches: inputs (B, T), digit_pos (B, T) zeros, labels (B, A), answer_offset (B,)."""

    def __init__(self, config: TextConfig, tokenizer: BpeTokenizer | None = None,
                 pairs: list[tuple[str, str]] | None = None):
        self.config = config
        pairs = read_pairs(config.path) if pairs is None else pairs
        self.tokenizer = tokenizer or BpeTokenizer.train([config.path], config.vocab_size)
        held = [zlib.crc32(p.encode()) % 10 == 0 for p, _ in pairs]
        self.heldout = [pair for pair, h in zip(pairs, held, strict=True) if h]
        self.train = [pair for pair, h in zip(pairs, held, strict=True) if not h] or pairs
        self.ood: list = []
        prompts = [len(self.tokenizer.encode(p)) + 1 for p, _ in pairs] or [1]
        answers = [len(self.tokenizer.encode(a)) + 1 for _, a in pairs] or [1]
        self.train_shape = self.max_shape = (max(prompts), max(answers))

    @classmethod
    def for_generation(cls, config: TextConfig, tokenizer: BpeTokenizer, max_shape: tuple[int, int]) -> "TextTask":
        """Returns a task that only encodes prompts and reads answers (the text file is not needed)."""
        task = cls(config, tokenizer, pairs=[])
        task.train_shape = task.max_shape = max_shape
        return task

    def read_answer(self, text: str) -> str:
        """Returns the answer as written."""
        return text

    def encode_prompts(self, prompts: list[str], width: int | None = None,
                       offsets: list[int] | None = None) -> dict[str, torch.Tensor]:
        """Returns {"inputs", "digit_pos", "answer_offset"} for `prompts`, right-padded to `width`."""
        ids = [[self.tokenizer.bos_id, *self.tokenizer.encode(p)] for p in prompts]
        width = width or max(map(len, ids))
        inputs = torch.full((len(prompts), width), self.tokenizer.pad_id, dtype=torch.long)
        for row, row_ids in enumerate(ids):
            inputs[row, :len(row_ids)] = torch.tensor(row_ids[:width])
        return {"inputs": inputs, "digit_pos": torch.zeros_like(inputs),
                "answer_offset": torch.zeros(len(prompts), dtype=torch.long)}

    def encode(self, pairs: list[tuple[str, str]], shape: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
        """Returns a batch for `pairs`, padded to `shape` (T, A) (default: the longest)."""
        T, A = shape or (None, None)
        batch = self.encode_prompts([p for p, _ in pairs], T)
        answers = [[*self.tokenizer.encode(a), self.tokenizer.eos_id] for _, a in pairs]
        A = A or max(map(len, answers))
        labels = torch.full((len(pairs), A), IGNORE_INDEX, dtype=torch.long)
        for row, answer in enumerate(answers):
            labels[row, :len(answer)] = torch.tensor(answer[:A])
        batch["labels"] = labels
        return batch

    def batch_at(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> dict[str, torch.Tensor]:
        """Returns this rank's share of the training batch of `step` (drawn with replacement, deterministic)."""
        rng = random.Random(f"text-{self.config.seed}-{step}")
        pairs = [rng.choice(self.train) for _ in range(batch_size * world_size)][rank::world_size]
        return self.encode(pairs, self.train_shape)

    def eval_batches(self, split: str, batch_size: int = 500) -> list[dict[str, torch.Tensor]]:
        """Returns the held-out pairs as batches ("ood" is empty for text)."""
        pairs = self.heldout if split == "heldout" else self.ood
        return [self.encode(pairs[i:i + batch_size]) for i in range(0, len(pairs), batch_size)]
