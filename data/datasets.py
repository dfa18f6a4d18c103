"""Distillation datasets built from stored decisions: the teacher's decisions, split by episode, as tensors.

Targets are the teacher's full distribution over the legal actions. Train and held-out sets are split by episode, never
by decision, with a fixed seed, so held-out agreement measures play the student has not seen. The tokens come from an
`Encoder` the caller passes (the student's, `agent.student.StudentEncoder`): data/ knows the store, not the student.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from data.store import DecisionRecord, ExperienceStore


class Encoder(Protocol):
    """Turns (observation text, legal actions, task id) items into a batch of tensors with "candidates" (N, A, K)."""

    seq_len: int
    answer_len: int

    def encode(self, items: Sequence[tuple[str, Sequence[str], int]]) -> dict[str, torch.Tensor]:
        """Returns the batch for `items`."""
        ...


@dataclass
class DistillationSplit:
    """Tensors of one split: the encoded batch plus "teacher_probs" (N, A), "weights" (N,) and "counts" (N,), the
    number of stored decisions each row stands for; per row, the decision's (env, state)."""

    tensors: dict[str, torch.Tensor]
    states: list[tuple[str, str]]  # (env, state) per row
    episode_ids: list[int]  # the episodes the split's decisions come from

    def __len__(self) -> int:
        """Returns the number of stored decisions in the split (rows × their counts)."""
        return int(self.tensors["counts"].sum())


@dataclass
class DistillationData:
    """Train and held-out splits (by episode) of the teacher's stored decisions."""

    train: DistillationSplit
    held_out: DistillationSplit

    def unseen_mask(self) -> torch.Tensor:
        """Returns (N_held_out,) bool: the held-out row's state never occurs in the training split."""
        seen = set(self.train.states)
        return torch.tensor([s not in seen for s in self.held_out.states], dtype=torch.bool)


def is_teacher_decision(decision: DecisionRecord) -> bool:
    """True for decisions made by a teacher (GPT-2 or an oracle): no registered model version made them."""
    return decision.model_version is None


def split_episodes(episode_ids: Sequence[int], held_out_fraction: float, seed: int) -> tuple[set[int], set[int]]:
    """Returns (train, held-out) episode id sets: a seeded shuffle, at least one episode on each side if possible."""
    ids = np.array(sorted(set(episode_ids)))
    np.random.default_rng(seed).shuffle(ids)
    n_held = int(round(len(ids) * held_out_fraction))
    if len(ids) >= 2:
        n_held = min(max(n_held, 1), len(ids) - 1)
    return set(ids[n_held:].tolist()), set(ids[:n_held].tolist())


def _decision_key(d: DecisionRecord) -> tuple:
    """What a decision teaches: the student's input and the teacher's distribution (to 6 decimals: a batched GPT-2
    forward can differ in the last float bits for the same prompt)."""
    return d.env, d.observation, tuple(d.legal_actions), d.task_id, tuple(round(p, 6) for p in d.probs)


def _split(encoder: Encoder, decisions: list[DecisionRecord], weights: list[float],
           merge: bool) -> DistillationSplit:
    """Encodes one split. With `merge`, decisions that teach the same thing become one row whose count is their
    number and whose weight is their mean weight."""
    groups: dict[tuple, list[int]] = {}
    for i, d in enumerate(decisions):
        groups.setdefault(_decision_key(d) if merge else (i,), []).append(i)
    rows = [members[0] for members in groups.values()]
    episode_ids = sorted({d.episode_id for d in decisions})
    if not rows:
        tensors = {"inputs": torch.zeros(0, encoder.seq_len, dtype=torch.long),
                   "lengths": torch.zeros(0, dtype=torch.long), "task_ids": torch.zeros(0, dtype=torch.long),
                   "candidates": torch.zeros(0, 1, encoder.answer_len, dtype=torch.long),
                   "teacher_probs": torch.zeros(0, 1), "weights": torch.zeros(0), "counts": torch.zeros(0)}
        return DistillationSplit(tensors, [], episode_ids)
    firsts = [decisions[i] for i in rows]
    tensors = encoder.encode([(d.observation, d.legal_actions, d.task_id) for d in firsts])
    probs = torch.zeros(tensors["candidates"].shape[:2])
    for row, d in enumerate(firsts):
        probs[row, :len(d.probs)] = torch.tensor(d.probs)
    tensors["teacher_probs"] = probs / probs.sum(-1, keepdim=True)
    tensors["weights"] = torch.tensor([float(np.mean([weights[i] for i in members])) for members in groups.values()],
                                      dtype=torch.float32)
    tensors["counts"] = torch.tensor([float(len(members)) for members in groups.values()])
    return DistillationSplit(tensors, [(d.env, d.state) for d in firsts], episode_ids)


def build_distillation_data(store: ExperienceStore, encoder: Encoder, held_out_fraction: float = 0.2,
                            seed: int = 0, envs: Sequence[str] | None = None, failure_weight: float = 1.0,
                            distinct: bool = False, up_to: int | None = None) -> DistillationData:
    """Returns the teacher's stored decisions as train/held-out tensors, split by episode with `seed`.

    `failure_weight` < 1 down-weights decisions from episodes that did not succeed (outcome weighting). Held-out
    decisions that teach the same thing are one row with a count (evaluation weighs rows by it, so metrics are per
    decision); with `distinct` the training split is merged the same way, so each state the teacher visited is one
    example however often it was visited. `up_to` keeps the decisions up to that id (a resumed run's data).
    """
    decisions = [d for d in store.decisions(up_to=up_to) if is_teacher_decision(d) and (envs is None or d.env in envs)]
    train_ids, _ = split_episodes([d.episode_id for d in decisions], held_out_fraction, seed)
    outcome = {e.id: e.success for e in store.episodes(finished=True)}
    weights = [1.0 if outcome.get(d.episode_id, True) else failure_weight for d in decisions]
    train = [(d, w) for d, w in zip(decisions, weights, strict=True) if d.episode_id in train_ids]
    held = [(d, w) for d, w in zip(decisions, weights, strict=True) if d.episode_id not in train_ids]
    return DistillationData(_split(encoder, [d for d, _ in train], [w for _, w in train], merge=distinct),
                            _split(encoder, [d for d, _ in held], [w for _, w in held], merge=True))
