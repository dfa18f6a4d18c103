"""The synthetic arithmetic dataset: "What is 12 + 7?" → "19", as token tensors for the HRM × LM.

Problems are drawn with a number of digits per operand uniform in a range; addition by default, subtraction
(larger minus smaller, so no sign) and multiplication as options. Answers may be written least significant digit
first (`reverse_answer`): the decoder then writes each digit after the ones it depends on, which makes addition
learnable by tiny models in minutes (Lee et al. 2023, "Teaching Arithmetic to Small Transformers"). A fixed set of
held-out problems is never drawn for training, and an out-of-distribution split has longer operands than any
training problem.

Each digit token also gets its *significance* (0 = the ones digit of its number) as an Abacus index (McLeish et al.
2024, "Transformers Can Do Arithmetic with the Right Embeddings"); decoder position t of a reversed answer writes
the digit of significance t, so both sides share one embedding table. In training every example shifts its
indices by a random offset, so indices beyond the training lengths are trained too (their length-generalisation
trick). Index 0 marks tokens that are not digits; a digit of significance s has index 1 + s + offset.
"""

import random
from dataclasses import dataclass

import torch

from hrm.lm.tokenizer import CharTokenizer
from hrm.losses import IGNORE_INDEX

PROMPT = "What is {a} {op} {b}?"


@dataclass(frozen=True)
class ArithmeticConfig:
    """What problems the synthetic dataset holds."""

    ops: str = "+"
    """Operations drawn, any of "+-*" (e.g. "+-")."""
    min_digits: int = 1
    max_digits: int = 5
    """Training and held-out operands have min_digits..max_digits digits (each operand drawn on its own)."""
    ood_min_digits: int = 6
    ood_max_digits: int = 8
    """The out-of-distribution split's operands have this many digits (never trained on)."""
    reverse_answer: bool = True
    """Write answers least significant digit first (generation turns them back)."""
    heldout_size: int = 2000
    ood_size: int = 500
    abacus_offset: int = 10
    """Training shifts each example's digit indices by a random offset in [0, abacus_offset]."""
    seed: int = 0

    def __post_init__(self):
        if not self.ops or set(self.ops) - set("+-*"):
            raise ValueError(f"ops must be made of '+', '-' and '*', got {self.ops!r}")
        if not 1 <= self.min_digits <= self.max_digits:
            raise ValueError(f"need 1 ≤ min_digits ≤ max_digits, got {self.min_digits}..{self.max_digits}")
        if not 1 <= self.ood_min_digits <= self.ood_max_digits:
            raise ValueError(f"need 1 ≤ ood_min_digits ≤ ood_max_digits, got "
                             f"{self.ood_min_digits}..{self.ood_max_digits}")

    def answer_digits(self, max_digits: int) -> int:
        """Returns the most digits an answer to operands of up to `max_digits` digits can have."""
        return 2 * max_digits if "*" in self.ops else max_digits + 1


Problem = tuple[int, str, int]


def solve(a: int, op: str, b: int) -> int:
    """Returns a op b."""
    return a + b if op == "+" else a - b if op == "-" else a * b


def digits_of(problem: Problem) -> int:
    """Returns the digits of the longer operand (what accuracy is broken down by)."""
    return max(len(str(problem[0])), len(str(problem[2])))


def significance(text: str) -> list[int]:
    """Returns, per character, 1 + its place in its run of digits counted from the last (0 for non-digits)."""
    out = [0] * len(text)
    end = len(text)
    for i in range(len(text) - 1, -1, -1):
        if not text[i].isdigit():
            end = i
        else:
            out[i] = end - i
    return out


class ArithmeticTask:
    """Draws problems and turns them into batches: inputs (B, T) with a <bos> first and right padding, digit_pos
    (B, T) Abacus indices, labels (B, A) answer ids + <eos> (−100 after), answer_offset (B,)."""

    def __init__(self, config: ArithmeticConfig, tokenizer: CharTokenizer | None = None):
        self.config = config
        self.tokenizer = tokenizer or CharTokenizer()
        self.heldout = self._distinct(random.Random(f"heldout-{config.seed}"), config.heldout_size,
                                      config.min_digits, config.max_digits, exclude=set())
        self.heldout_set = set(self.heldout)
        self.ood = self._distinct(random.Random(f"ood-{config.seed}"), config.ood_size, config.ood_min_digits,
                                  config.ood_max_digits, exclude=self.heldout_set)

    # --- sizes --------------------------------------------------------------------------------------------------

    def prompt_len(self, max_digits: int) -> int:
        """Returns the tokens of the longest prompt with operands of up to `max_digits` digits (<bos> included)."""
        return 1 + len(PROMPT.format(a="9" * max_digits, op="+", b="9" * max_digits))

    def answer_len(self, max_digits: int) -> int:
        """Returns the longest label row (answer digits + <eos>)."""
        return self.config.answer_digits(max_digits) + 1

    @property
    def train_shape(self) -> tuple[int, int]:
        """Returns (T, A) of every training batch (fixed, so the ACT carry keeps its shape)."""
        return self.prompt_len(self.config.max_digits), self.answer_len(self.config.max_digits)

    @property
    def max_shape(self) -> tuple[int, int]:
        """Returns (T, A) over every split, the out-of-distribution one included."""
        longest = max(self.config.max_digits, self.config.ood_max_digits)
        return self.prompt_len(longest), self.answer_len(longest)

    # --- problems -----------------------------------------------------------------------------------------------

    def _draw(self, rng: random.Random, low: int, high: int) -> Problem:
        op = rng.choice(self.config.ops)
        a, b = (rng.randrange(10 ** (n - 1) if n > 1 else 0, 10**n)
                for n in (rng.randint(low, high), rng.randint(low, high)))
        if op == "-" and a < b:
            a, b = b, a
        return a, op, b

    def _distinct(self, rng: random.Random, n: int, low: int, high: int, exclude: set) -> list[Problem]:
        out: dict[Problem, None] = {}
        for _ in range(20 * n):  # small digit ranges hold few problems; stop trying after a while
            if len(out) >= n:
                break
            p = self._draw(rng, low, high)
            if p not in exclude:
                out[p] = None
        return list(out)

    def train_problems(self, step: int, n: int) -> list[Problem]:
        """Returns the `n` training problems of `step` (a function of seed and step, never a held-out one)."""
        rng = random.Random(f"train-{self.config.seed}-{step}")
        out = []
        while len(out) < n:
            p = self._draw(rng, self.config.min_digits, self.config.max_digits)
            if p not in self.heldout_set:
                out.append(p)
        return out

    def answer_text(self, problem: Problem) -> str:
        """Returns the answer as the model writes it (reversed with reverse_answer)."""
        text = str(solve(*problem))
        return text[::-1] if self.config.reverse_answer else text

    def read_answer(self, text: str) -> str:
        """Returns the answer a model wrote, in the usual digit order."""
        return text[::-1] if self.config.reverse_answer else text

    # --- tensors ------------------------------------------------------------------------------------------------

    def encode_prompts(self, prompts: list[str], width: int | None = None,
                       offsets: list[int] | None = None) -> dict[str, torch.Tensor]:
        """Returns {"inputs", "digit_pos", "answer_offset"} for `prompts`, right-padded to `width` (default the
        longest). Raises TokenizerError for a character the tokenizer does not know."""
        ids = [[self.tokenizer.bos_id, *self.tokenizer.encode(p)] for p in prompts]
        width = width or max(map(len, ids))
        offsets = offsets or [0] * len(prompts)
        inputs = torch.full((len(prompts), width), self.tokenizer.pad_id, dtype=torch.long)
        digit_pos = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, (prompt, row_ids, offset) in enumerate(zip(prompts, ids, offsets, strict=True)):
            if len(row_ids) > width:
                raise ValueError(f"prompt {prompt!r} is {len(row_ids)} tokens; at most {width} fit")
            inputs[row, :len(row_ids)] = torch.tensor(row_ids)
            places = [0, *significance(prompt)]
            digit_pos[row, :len(places)] = torch.tensor([s + offset if s else 0 for s in places])
        return {"inputs": inputs, "digit_pos": digit_pos, "answer_offset": torch.tensor(offsets, dtype=torch.long)}

    def encode(self, problems: list[Problem], shape: tuple[int, int] | None = None,
               offsets: list[int] | None = None) -> dict[str, torch.Tensor]:
        """Returns a batch (inputs, digit_pos, answer_offset, labels) for `problems`, padded to `shape` (T, A)."""
        T, A = shape or (None, None)
        batch = self.encode_prompts([PROMPT.format(a=a, op=op, b=b) for a, op, b in problems], T, offsets)
        answers = [[*self.tokenizer.encode(self.answer_text(p)), self.tokenizer.eos_id] for p in problems]
        A = A or max(map(len, answers))
        labels = torch.full((len(problems), A), IGNORE_INDEX, dtype=torch.long)
        for row, answer in enumerate(answers):
            labels[row, :len(answer)] = torch.tensor(answer)
        batch["labels"] = labels
        return batch

    def batch_at(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> dict[str, torch.Tensor]:
        """Returns this rank's share of the global training batch of `step` (deterministic, so resume is exact)."""
        problems = self.train_problems(step, batch_size * world_size)[rank::world_size]
        rng = random.Random(f"offset-{self.config.seed}-{step}-{rank}")
        offsets = [rng.randint(0, self.config.abacus_offset) for _ in problems]
        return self.encode(problems, self.train_shape, offsets)

    def eval_batches(self, split: str, batch_size: int = 500) -> list[dict[str, torch.Tensor]]:
        """Returns the "heldout" or "ood" split as batches, each with "digits" (B,) for per-length accuracy."""
        problems = self.heldout if split == "heldout" else self.ood
        out = []
        for i in range(0, len(problems), batch_size):
            chunk = problems[i:i + batch_size]
            batch = self.encode(chunk)
            batch["digits"] = torch.tensor([digits_of(p) for p in chunk])
            out.append(batch)
        return out
