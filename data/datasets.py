"""Distillation datasets built from stored decisions: the teacher's decisions, split by episode, as tensors.

Targets are the teacher's full distribution over the legal actions. Train and held-out sets are split by episode, never
by decision, with a fixed seed, so held-out agreement measures play the student has not seen. The tokens come from an
`Encoder` the caller passes (the student's, `agent.student.StudentEncoder`): data/ knows the store, not the student.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from sqlalchemy import Column, Connection, Integer, MetaData, Table, and_, case, func, insert, or_, select
from sqlalchemy.orm import aliased

from data.schema import IDS_PER_QUERY, Decision, Episode, StoredText, text_hash
from data.store import DecisionRecord, ExperienceStore, stored_probs


class Encoder(Protocol):
    """Turns (observation text, legal actions, task id) items into a batch of tensors with "candidates" (N, A, K)."""

    seq_len: int
    answer_len: int

    def encode(self, items: Sequence[tuple[str, Sequence[str], int]]) -> dict[str, torch.Tensor]:
        """Returns the batch for `items`."""


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


def _unit_hash(ids: np.ndarray, seed: int) -> np.ndarray:
    """Returns a seeded, well-mixed value in [0, 1) for each id (SplitMix64 of id and seed)."""
    with np.errstate(over="ignore"):  # the mixing wraps around 2**64 on purpose
        x = ids.astype(np.uint64) + np.uint64(seed % 2**32) * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / 2.0**53


def split_episodes(episode_ids: Sequence[int], held_out_fraction: float, seed: int) -> tuple[set[int], set[int]]:
    """Returns (train, held-out) episode id sets, at least one episode on each side if possible.

    An episode's side depends only on its id and `seed` (a seeded hash below `held_out_fraction` holds it out), not on
    which other episodes exist: as the store grows, every episode stays where it was, so a student that goes on
    training from an earlier run's weights is never scored on episodes it trained on.
    """
    ids = np.array(sorted(set(episode_ids)), dtype=np.int64)
    if len(ids) < 2:
        return set(ids.tolist()), set()
    u = _unit_hash(ids, seed)
    held = u < held_out_fraction
    if not held.any():
        held[np.argmin(u)] = True
    elif held.all():
        held[np.argmax(u)] = False
    return set(ids[~held].tolist()), set(ids[held].tolist())


HELD_OUT = Table("distillation_held_out", MetaData(), Column("episode_id", Integer, primary_key=True),
                 prefixes=["TEMPORARY"])
"""The held-out episodes of one build: a temporary table of its read transaction (gone at its rollback)."""


@dataclass(slots=True)
class _Row:
    """One output row: what its first decision teaches, in which state, and how many decisions it counts."""

    env: str
    state: str
    observation_id: int
    legal_actions_id: int
    task_id: int
    probs: tuple[float, ...]
    count: int
    failures: int


def _split_rows(connection: Connection, teacher: list, held_out: bool, merge: bool) -> list[_Row]:
    """Returns one split's rows in the order of their first decision. With `merge`, the database groups decisions
    that teach the same thing (same env, observation, legal actions, task and probs) into one row with a count."""
    failed = case((and_(Episode.ended_at.is_not(None), or_(Episode.success.is_(None), Episode.success.is_(False))), 1),
                  else_=0)
    in_held_out = Decision.episode_id.in_(select(HELD_OUT.c.episode_id))
    keys = [Decision.env_id, Decision.observation_id, Decision.legal_actions_id, Decision.task_id, Decision.probs]
    groups = (select(func.min(Decision.id).label("first_id"), func.count().label("decisions"),
                     func.sum(failed).label("failures"), *keys)
              .join(Episode, Episode.id == Decision.episode_id)
              .where(*teacher, in_held_out if held_out else ~in_held_out)
              .group_by(*(keys if merge else [Decision.id])).subquery())
    first = aliased(Decision)
    env = aliased(StoredText)
    query = (select(groups.c.first_id, env.text, first.state, first.observation_id, first.legal_actions_id,
                    first.task_id, first.probs, groups.c.decisions, groups.c.failures)
             .join(first, first.id == groups.c.first_id).join(env, env.id == first.env_id)
             .order_by(groups.c.first_id))
    rows: dict[tuple | int, _Row] = {}
    for first_id, env_name, state, observation_id, legal_id, task_id, blob, count, failures in connection.execute(
            query.execution_options(yield_per=10_000)):
        probs = stored_probs(blob)
        key = (env_name, observation_id, legal_id, task_id, tuple(round(p, 6) for p in probs)) if merge else first_id
        if key in rows:  # probs equal to 6 decimals (a batched GPT-2 forward differs in the last float bits)
            rows[key].count += count
            rows[key].failures += failures
        else:
            rows[key] = _Row(env_name, state, observation_id, legal_id, task_id, probs, count, failures)
    return list(rows.values())


def _texts(connection: Connection, ids: set[int]) -> dict[int, str]:
    """Returns the stored texts with these ids."""
    ordered, texts = sorted(ids), {}
    for start in range(0, len(ordered), IDS_PER_QUERY):
        chunk = ordered[start:start + IDS_PER_QUERY]
        texts.update(connection.execute(select(StoredText.id, StoredText.text).where(StoredText.id.in_(chunk))).all())
    return texts


def _encode(encoder: Encoder, rows: list[_Row], texts: dict[int, str], failure_weight: float,
            episode_ids: set[int]) -> DistillationSplit:
    """Encodes one split's rows; a row's weight is the mean of its decisions' weights."""
    if not rows:
        tensors = {"inputs": torch.zeros(0, encoder.seq_len, dtype=torch.long),
                   "lengths": torch.zeros(0, dtype=torch.long), "task_ids": torch.zeros(0, dtype=torch.long),
                   "candidates": torch.zeros(0, 1, encoder.answer_len, dtype=torch.long),
                   "teacher_probs": torch.zeros(0, 1), "weights": torch.zeros(0), "counts": torch.zeros(0)}
        return DistillationSplit(tensors, [], sorted(episode_ids))
    actions = {legal_id: tuple(json.loads(texts[legal_id])) for legal_id in {row.legal_actions_id for row in rows}}
    tensors = encoder.encode([(texts[row.observation_id], actions[row.legal_actions_id], row.task_id)
                              for row in rows])
    probs = torch.zeros(tensors["candidates"].shape[:2])
    for i, row in enumerate(rows):
        probs[i, :len(row.probs)] = torch.tensor(row.probs)
    tensors["teacher_probs"] = probs / probs.sum(-1, keepdim=True)
    tensors["weights"] = torch.tensor([(row.count - row.failures + row.failures * failure_weight) / row.count
                                       for row in rows], dtype=torch.float32)
    tensors["counts"] = torch.tensor([float(row.count) for row in rows])
    return DistillationSplit(tensors, [(row.env, row.state) for row in rows], sorted(episode_ids))


def build_distillation_data(store: ExperienceStore, encoder: Encoder, held_out_fraction: float = 0.2,
                            seed: int = 0, envs: Sequence[str] | None = None, failure_weight: float = 1.0,
                            distinct: bool = False, up_to: int | None = None) -> DistillationData:
    """Returns the teacher's stored decisions as train/held-out tensors, split by episode with `seed`.

    `failure_weight` < 1 down-weights decisions from episodes that did not succeed (outcome weighting). Held-out
    decisions that teach the same thing are one row with a count (evaluation weighs rows by it, so metrics are per
    decision); with `distinct` the training split is merged the same way, so each state the teacher visited is one
    example however often it was visited. `up_to` keeps the decisions up to that id (a resumed run's data). The
    database does the grouping, so memory grows with the distinct rows, not the decisions (except the training
    split without `distinct`, one row per decision).
    """
    teacher = [Decision.model_version.is_(None)]
    if envs is not None:
        env_ids = select(StoredText.id).where(StoredText.hash.in_([text_hash(env) for env in envs]))
        teacher.append(Decision.env_id.in_(env_ids))
    if up_to is not None:
        teacher.append(Decision.id <= up_to)
    with store.engine.connect() as connection:  # one read transaction: every query sees the same decisions
        episode_ids = connection.scalars(select(Decision.episode_id).where(*teacher).distinct()).all()
        train_ids, held_ids = split_episodes(episode_ids, held_out_fraction, seed)
        HELD_OUT.create(connection)
        if held_ids:
            connection.execute(insert(HELD_OUT), [{"episode_id": episode_id} for episode_id in held_ids])
        train_rows = _split_rows(connection, teacher, held_out=False, merge=distinct)
        held_rows = _split_rows(connection, teacher, held_out=True, merge=True)
        texts = _texts(connection, {row.observation_id for row in train_rows + held_rows}
                       | {row.legal_actions_id for row in train_rows + held_rows})
        connection.rollback()
    return DistillationData(_encode(encoder, train_rows, texts, failure_weight, train_ids),
                            _encode(encoder, held_rows, texts, failure_weight, held_ids))
