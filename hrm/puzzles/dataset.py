"""A built puzzle split, memory-mapped, served as batches of tensors: shuffled by epoch for training, in order
for testing, each rank taking its own rows of the global batch.

Training (as the seed's puzzle_dataset.py): every epoch visits each group once in a random order and takes one
random member of the group (the puzzle or one of its augmented copies). Epochs are laid end to end and cut into
global batches, so no example is dropped at an epoch's end; `batch_at(step)` is a pure function of the step,
which makes the step itself the data cursor a resumed run needs.
"""

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from hrm.losses import IGNORE_INDEX

Batch = dict[str, torch.Tensor]


class DatasetError(ValueError):
    """A dataset folder is missing, unreadable or inconsistent; the message says which file and what to do."""


@dataclass(frozen=True)
class PuzzleMetadata:
    """What dataset.json says about a split (the seed's PuzzleDatasetMetadata, plus identifiers)."""

    seq_len: int
    vocab_size: int
    pad_id: int
    ignore_label_id: int | None
    """Label value that means "no target" (becomes -100); None when every label counts."""
    blank_identifier_id: int
    num_puzzle_identifiers: int
    total_groups: int
    mean_puzzle_examples: float
    sets: list[str]
    identifiers: list[str] = field(default_factory=list)


def load_metadata(split_dir: str | Path) -> PuzzleMetadata:
    """Returns the metadata in `split_dir`/dataset.json; raises DatasetError when it is missing or malformed."""
    path = Path(split_dir) / "dataset.json"
    try:
        raw = json.loads(path.read_text())
    except OSError as e:
        raise DatasetError(f"cannot read {path} ({e.strerror}); build a dataset with "
                           f"`python -m hrm.puzzles.build --output-dir DIR` and pass data_path=DIR") from e
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}); rebuild the dataset") from e
    known = {f.name for f in fields(PuzzleMetadata)}
    try:
        return PuzzleMetadata(**{k: v for k, v in raw.items() if k in known})
    except TypeError as e:
        raise DatasetError(f"{path} lacks a required field ({e}); rebuild the dataset") from e


class PuzzleDataset:
    """One split (`train` or `test`) of a dataset folder; yields this rank's share of each global batch.

    Batches hold "inputs" (B, seq_len), "labels" (B, seq_len) with -100 where ignored, "task_ids" (B,), all int64,
    where B = global_batch_size / world_size.
    """

    def __init__(self, path: str | Path, split: str, global_batch_size: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0):
        directory = Path(path) / split
        self.metadata = load_metadata(directory)
        if global_batch_size < 1 or global_batch_size % world_size:
            raise DatasetError(f"global_batch_size {global_batch_size} must be a positive multiple of the "
                               f"{world_size} processes")
        if len(self.metadata.sets) != 1:
            raise DatasetError(f"{directory} holds sets {self.metadata.sets}; only single-set datasets are supported")
        name = self.metadata.sets[0]
        try:
            arrays = {key: np.load(directory / f"{name}__{key}.npy", mmap_mode="r" if key in ("inputs", "labels")
                                   else None) for key in ("inputs", "labels", "puzzle_identifiers",
                                                          "puzzle_indices", "group_indices")}
        except (OSError, ValueError) as e:
            raise DatasetError(f"cannot load the arrays in {directory} ({e}); rebuild the dataset") from e
        self.inputs, self.labels = arrays["inputs"], arrays["labels"]  # (N, seq_len), memory-mapped
        self.puzzle_identifiers = arrays["puzzle_identifiers"]  # (P,) one per puzzle
        self.puzzle_indices = arrays["puzzle_indices"]  # (P + 1,) first example of each puzzle
        self.group_indices = arrays["group_indices"]  # (G + 1,) first puzzle of each group
        if self.inputs.shape != self.labels.shape or self.inputs.shape[1:] != (self.metadata.seq_len,):
            raise DatasetError(f"{directory}: inputs {self.inputs.shape} and labels {self.labels.shape} do not "
                               f"match seq_len {self.metadata.seq_len}")
        self.global_batch_size, self.rank, self.world_size, self.seed = global_batch_size, rank, world_size, seed
        self.local_batch_size = global_batch_size // world_size
        self._epochs: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def num_groups(self) -> int:
        """Returns the number of groups (one example of each is visited per epoch)."""
        return len(self.group_indices) - 1

    @property
    def num_examples(self) -> int:
        """Returns the number of stored examples (every augmented copy counts)."""
        return len(self.inputs)

    @property
    def steps_per_epoch(self) -> float:
        """Returns how many global batches one epoch fills (a fraction when they do not divide evenly)."""
        return self.num_groups / self.global_batch_size

    def total_steps(self, epochs: int) -> int:
        """Returns the number of whole global batches in `epochs` epochs."""
        return epochs * self.num_groups // self.global_batch_size

    def epoch_of(self, step: int) -> float:
        """Returns how many epochs of data the first `step` batches consumed."""
        return step * self.global_batch_size / self.num_groups

    def epoch_order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns (example indices, puzzle indices), each (G,): epoch `epoch`'s one pick per group, shuffled."""
        if epoch not in self._epochs:
            rng = np.random.default_rng([self.seed, epoch])
            groups = rng.permutation(self.num_groups)
            first, size = self.group_indices[groups], np.diff(self.group_indices)[groups]
            puzzles = first + (rng.random(len(groups)) * size).astype(np.int64)
            start, count = self.puzzle_indices[puzzles], np.diff(self.puzzle_indices)[puzzles]
            examples = start + (rng.random(len(groups)) * count).astype(np.int64)
            self._epochs = {e: v for e, v in self._epochs.items() if e >= epoch - 1}  # batches straddle two epochs
            self._epochs[epoch] = (examples, puzzles)
        return self._epochs[epoch]

    def batch_at(self, step: int) -> Batch:
        """Returns this rank's rows of global training batch `step`."""
        first = step * self.global_batch_size + self.rank * self.local_batch_size
        positions = np.arange(first, first + self.local_batch_size)  # (B,) positions in the endless epoch stream
        epochs, offsets = np.divmod(positions, self.num_groups)
        examples = np.empty_like(positions)
        puzzles = np.empty_like(positions)
        for epoch in np.unique(epochs):
            rows = epochs == epoch
            order_examples, order_puzzles = self.epoch_order(int(epoch))
            examples[rows], puzzles[rows] = order_examples[offsets[rows]], order_puzzles[offsets[rows]]
        return self._collate(examples, puzzles)

    def test_batches(self):
        """Yields this rank's rows of each global batch over the whole split, in stored order (the last may be
        short, and a rank may get none of it)."""
        total = self.num_examples
        for start in range(0, total, self.global_batch_size):
            first = start + self.rank * self.local_batch_size
            last = min(first + self.local_batch_size, start + self.global_batch_size, total)
            if first >= last:
                continue
            examples = np.arange(first, last)
            puzzles = np.searchsorted(self.puzzle_indices, examples, side="right") - 1
            yield self._collate(examples, puzzles)

    def _collate(self, examples: np.ndarray, puzzles: np.ndarray) -> Batch:
        inputs = self.inputs[examples].astype(np.int64)  # (B, seq_len), read from the memory map
        labels = self.labels[examples].astype(np.int64)
        if self.metadata.ignore_label_id is not None:
            labels[labels == self.metadata.ignore_label_id] = IGNORE_INDEX
        return {"inputs": torch.from_numpy(inputs), "labels": torch.from_numpy(labels),
                "task_ids": torch.from_numpy(self.puzzle_identifiers[puzzles].astype(np.int64))}
