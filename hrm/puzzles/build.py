"""Build a Sudoku dataset for `python -m hrm.pretrain`: generated or Sudoku-Extreme puzzles, augmented, as .npy.

    python -m hrm.puzzles.build --output-dir runs/data/sudoku-1k-aug-1000 --subsample-size 1000 --num-aug 1000
    python -m hrm.puzzles.build --csv-dir sudoku-extreme --output-dir runs/data/sudoku-extreme-1k-aug-1000 \
        --subsample-size 1000 --num-aug 1000

The layout is the seed's (build_sudoku_dataset.py): OUTPUT/train and OUTPUT/test, each with dataset.json and
all__{inputs,labels,puzzle_identifiers,puzzle_indices,group_indices}.npy. Tokens: PAD 0, blank 1, digits 1-9 as
2..10 (vocab 11, seq_len 81), one puzzle identifier. Each training puzzle is a group: the puzzle itself, then
num_aug augmented copies. The test split is never augmented.
"""

import csv
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track

from hrm.cli import parse_args
from hrm.puzzles.sudoku import augment, consistent, generate, valid_solutions

SEQ_LEN, VOCAB_SIZE, PAD_ID, BLANK_ID = 81, 11, 0, 1
PROGRESS = Console(stderr=True)
ARRAYS = ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")


class PuzzleSourceError(ValueError):
    """A puzzle file is missing or malformed; the message names the file and line."""


@dataclass
class BuildArgs:
    """Build a Sudoku dataset (memory-mapped .npy arrays + dataset.json) for `python -m hrm.pretrain`."""

    output_dir: str = "runs/data/sudoku-1k-aug-1000"
    """Where train/ and test/ are written."""
    csv_dir: str | None = None
    """A folder with Sudoku-Extreme's train.csv and test.csv (source,question,answer,rating; '.' or '0' for
    blanks). Unset: puzzles are generated."""
    subsample_size: int | None = None
    """Keep this many training puzzles, drawn at random (the paper's recipe: 1000)."""
    num_aug: int = 0
    """Augmented copies per training puzzle (digit relabelling, transpose, band/stack and row/column shuffles)."""
    min_difficulty: int | None = None
    """CSV only: keep puzzles whose rating is at least this."""
    test_size: int | None = None
    """Keep this many test puzzles, drawn at random (default: all)."""
    train_puzzles: int = 1000
    """Generated: puzzles in the training split."""
    test_puzzles: int = 1000
    """Generated: puzzles in the test split (distinct from the training ones)."""
    givens: int = 30
    """Generated: clues per puzzle (17-81); fewer is harder."""
    min_backtracks: int = 0
    """Generated: keep puzzles on which the solver meets at least this many dead ends (harder)."""
    max_backtracks: int | None = None
    """Generated: keep puzzles on which the solver meets at most this many dead ends (0: solvable by singles)."""
    seed: int = 0
    """Seeds generation, subsampling and augmentation."""


def read_sudoku_csv(path: str | Path, min_rating: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Returns (questions, answers), each (N, 9, 9) uint8 with 0 for a blank, from a Sudoku-Extreme CSV file."""
    path = Path(path)
    if not path.is_file():
        raise PuzzleSourceError(f"{path} does not exist; --csv-dir needs train.csv and test.csv")
    questions, answers = [], []
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:3]] != ["source", "question", "answer"]:
            raise PuzzleSourceError(f"{path}: expected the header source,question,answer,rating, got {header}")
        for line, row in enumerate(reader, start=2):
            if len(row) < 4:
                raise PuzzleSourceError(f"{path}:{line}: expected 4 columns, got {len(row)}")
            _, question, answer, rating = row[:4]
            if min_rating is not None and not rating.strip().lstrip("-").isdigit():
                raise PuzzleSourceError(f"{path}:{line}: rating must be an integer, got {rating!r}")
            if min_rating is not None and int(rating) < min_rating:
                continue
            question = question.replace(".", "0")
            if len(question) != 81 or len(answer) != 81 or not (question + answer).isdigit():
                raise PuzzleSourceError(f"{path}:{line}: question and answer must be 81 digits ('.' for a blank)")
            questions.append(np.frombuffer(question.encode(), np.uint8) - ord("0"))
            answers.append(np.frombuffer(answer.encode(), np.uint8) - ord("0"))
    if not questions:
        raise PuzzleSourceError(f"{path} holds no puzzles (after --min-difficulty)")
    questions, answers = np.stack(questions).reshape(-1, 9, 9), np.stack(answers).reshape(-1, 9, 9)
    bad = np.flatnonzero(~valid_solutions(answers) | ~consistent(questions, answers))
    if bad.size:
        raise PuzzleSourceError(f"{path}: the answer of puzzle {bad[0] + 1} is not a valid solution of its question")
    return questions, answers


def generate_puzzles(count: int, args: BuildArgs, rng: np.random.Generator,
                     exclude: set[bytes] = frozenset(), label: str = "puzzles") -> tuple[np.ndarray, np.ndarray]:
    """Returns `count` distinct generated (questions, answers), each (count, 9, 9) uint8, none in `exclude`."""
    questions, answers, seen = [], [], set(exclude)
    for _ in track(range(count), description=f"generating {label}", transient=True, console=PROGRESS):
        while True:
            question, answer, _ = generate(rng, args.givens, args.min_backtracks, args.max_backtracks)
            if question.tobytes() not in seen:
                break
        seen.add(question.tobytes())
        questions.append(question)
        answers.append(answer)
    return np.stack(questions), np.stack(answers)


def subsample(questions: np.ndarray, answers: np.ndarray, size: int | None,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Returns `size` randomly chosen pairs (all of them when size is None or not smaller)."""
    if size is None or size >= len(questions):
        return questions, answers
    keep = np.sort(rng.choice(len(questions), size=size, replace=False))
    return questions[keep], answers[keep]


def augmented_split(questions: np.ndarray, answers: np.ndarray, num_aug: int,
                    rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Returns the split's arrays: per puzzle a group of itself and `num_aug` shuffled copies, as tokens."""
    n, copies = len(questions), 1 + num_aug
    inputs = np.empty((n * copies, SEQ_LEN), np.uint8)
    labels = np.empty((n * copies, SEQ_LEN), np.uint8)
    for i in track(range(n), description="augmenting", transient=True, console=PROGRESS,
                   disable=num_aug == 0):
        group = slice(i * copies, (i + 1) * copies)
        q, a = augment(questions[i], answers[i], num_aug, rng)  # (num_aug, 9, 9) each; the original goes first
        inputs[group] = np.concatenate((questions[i][None], q)).reshape(copies, SEQ_LEN)
        labels[group] = np.concatenate((answers[i][None], a)).reshape(copies, SEQ_LEN)
    # Tokens: a blank (0) becomes 1 and digit d becomes d + 1, leaving 0 for padding (as the seed does).
    return {
        "inputs": inputs + 1,
        "labels": labels + 1,
        "puzzle_identifiers": np.zeros(n * copies, np.int32),  # Sudoku has one puzzle identifier
        "puzzle_indices": np.arange(n * copies + 1, dtype=np.int32),  # one example per puzzle
        "group_indices": np.arange(0, n * copies + 1, copies, dtype=np.int32),  # a puzzle and its copies
    }


def write_split(directory: Path, arrays: dict[str, np.ndarray], build: dict) -> dict:
    """Writes the arrays as all__NAME.npy and a dataset.json describing them; returns the metadata."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ARRAYS:
        np.save(directory / f"all__{name}.npy", arrays[name])
    metadata = {
        "seq_len": SEQ_LEN, "vocab_size": VOCAB_SIZE,  # PAD + blank + 9 digits
        "pad_id": PAD_ID, "ignore_label_id": PAD_ID, "blank_identifier_id": 0,
        "num_puzzle_identifiers": 1, "identifiers": ["<blank>"],
        "total_groups": len(arrays["group_indices"]) - 1,
        "total_puzzles": len(arrays["puzzle_indices"]) - 1,
        "total_examples": len(arrays["inputs"]),
        "mean_puzzle_examples": 1.0,
        "sets": ["all"],
        "arrays": {name: f"all__{name}.npy" for name in ARRAYS},
        "tokens": {"pad": PAD_ID, "blank": BLANK_ID, "digit_d": "d + 1"},
        "build": build,
    }
    (directory / "dataset.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def build(args: BuildArgs) -> dict[str, dict]:
    """Builds OUTPUT/train and OUTPUT/test from the chosen source; returns each split's metadata."""
    if args.num_aug < 0 or any(n is not None and n < 1 for n in (args.subsample_size, args.test_size)):
        raise ValueError("--num-aug must be at least 0, --subsample-size and --test-size at least 1")
    if args.csv_dir is None and args.min_difficulty is not None:
        raise ValueError("--min-difficulty filters CSV ratings; for generated puzzles use --min-backtracks")
    rng = np.random.default_rng(args.seed)
    if args.csv_dir is not None:
        train = read_sudoku_csv(Path(args.csv_dir) / "train.csv", args.min_difficulty)
        test = read_sudoku_csv(Path(args.csv_dir) / "test.csv", args.min_difficulty)
        source = f"csv:{args.csv_dir}"
    else:
        train = generate_puzzles(args.train_puzzles, args, rng, label="training puzzles")
        test = generate_puzzles(args.test_puzzles, args, rng, {q.tobytes() for q in train[0]}, "test puzzles")
        source = "generated"
    train = subsample(*train, args.subsample_size, rng)
    test = subsample(*test, args.test_size, rng)
    out, info = Path(args.output_dir), {**asdict(args), "source": source}
    return {"train": write_split(out / "train", augmented_split(*train, args.num_aug, rng), info),
            "test": write_split(out / "test", augmented_split(*test, 0, rng), info)}


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m hrm.puzzles.build`; returns the process exit code."""
    args = parse_args(BuildArgs, argv, prog="python -m hrm.puzzles.build")
    try:
        metadata = build(args)
    except ValueError as e:  # PuzzleSourceError included: a user's file or setting
        print(f"hrm.puzzles.build: error: {e}", file=sys.stderr)
        return 2
    train, test = metadata["train"], metadata["test"]
    print(f"{args.output_dir}: train {train['total_groups']} puzzles × {1 + args.num_aug} = "
          f"{train['total_examples']} examples | test {test['total_examples']} puzzles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
