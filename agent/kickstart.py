"""Kickstarting: where the teacher still plays measurably better than the learner, an RL round's target leans towards
what the teacher would do in the inputs the learner's own rollouts reached (Schmitt et al. 2018, "Kickstarting deep
reinforcement learning": a teacher's cross-entropy on the student's trajectories, weighted beside the RL objective).

Distillation copies the teacher in the teacher's states; once the student acts it reaches states the teacher never
did (BabyAI's distilled student loops where the bot never would) and nothing it learnt says how to leave them. Asking
the teacher there is the correction imitation alone lacks (DAgger's point); mixed into the AWR target
(`agent.awr.awr_targets`) it makes each round a step on the learner's outcomes and a step towards the teacher.

DAgger aggregates: the learner's states labelled by the teacher join the teacher's own decisions, and the policy is
fitted to both. Fitting the learner's states alone pulled the student away from what distillation taught it (README),
so where the teacher is asked its own stored decisions (`demonstrations`) are fitted too, beside the round's rows.

The teacher's say is gated per env by outcomes, not by a schedule: only while its stored episodes return more than
the round's rollouts by more than two standard errors. A teacher no better than its student (the random `tiny`
GPT-2; GPT-2 once RL has passed it) has none, so RL is free to leave it behind.
"""

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from agent.policy import Observation, Policy
from agent.student import StudentEncoder
from data.store import ExperienceStore

TEACHER_EPISODES = 1000
"""The teacher's most recent stored episodes per env that measure how well it plays."""
DEMONSTRATIONS = 20_000
"""The teacher's most recent stored decisions per env fitted beside a round's rows."""
QUERY_BATCH = 64


@dataclass
class Demonstrations:
    """The teacher's stored decisions as the student reads them, with the teacher's probabilities as the target."""

    batch: dict[str, torch.Tensor]  # the student's encoding (`StudentEncoder.encode`)
    probs: torch.Tensor  # (N, A) the teacher's probabilities over each input's legal actions (0 past them)

    def __len__(self) -> int:
        return len(self.probs)

    def to(self, device: torch.device) -> "Demonstrations":
        """Returns the demonstrations with every tensor on `device`."""
        return Demonstrations({k: v.to(device) for k, v in self.batch.items()}, self.probs.to(device))


def demonstrations(store: ExperienceStore, teacher: str, envs: Sequence[str], encoder: StudentEncoder,
                   limit: int = DEMONSTRATIONS) -> Demonstrations | None:
    """Returns the teacher's most recent `limit` stored decisions in each of `envs` (None where it has none)."""
    items, probs = [], []
    for env in envs:
        decisions = deque(store.decisions(env=env, policy=teacher), maxlen=limit)  # streamed: a long store fits
        items += [(d.observation, d.legal_actions, d.task_id) for d in decisions]
        probs += [d.probs for d in decisions]
    if not items:
        return None
    table = np.zeros((len(probs), max(len(p) for p in probs)))
    for row, p in enumerate(probs):
        table[row, :len(p)] = p
    return Demonstrations(encoder.encode(items), torch.tensor(table, dtype=torch.float32))


def teacher_edge(store: ExperienceStore, teacher: str, env: str, learner_returns: Sequence[float]
                 ) -> tuple[float, float]:
    """Returns (the mean return of `teacher`'s stored episodes in `env` − the mean of `learner_returns`, its standard
    error); (nan, nan) when either side has fewer than two episodes."""
    taught = np.array([e.episode_return for e in store.episodes(env=env, policy=teacher, limit=TEACHER_EPISODES)])
    learnt = np.asarray(learner_returns, dtype=float)
    if len(taught) < 2 or len(learnt) < 2:
        return float("nan"), float("nan")
    edge = float(taught.mean() - learnt.mean())
    return edge, float(np.sqrt(taught.var(ddof=1) / len(taught) + learnt.var(ddof=1) / len(learnt)))


def teacher_is_better(edge: float, stderr: float, noise: float = 2.0) -> bool:
    """Returns whether a teacher's edge over the learner is beyond `noise` standard errors (nan: not measured)."""
    return bool(np.isfinite(edge) and edge > noise * stderr)


def teacher_probs(teacher: Policy, observations: Sequence[Observation], taught: Sequence[bool]
                  ) -> list[np.ndarray | None]:
    """Returns the teacher's probabilities over each observation's legal actions where `taught` (None elsewhere).
    Asked in the order given — play order, so an expert that follows an episode (the BabyAI bot) continues it rather
    than replaying it from the start."""
    asked = [i for i, t in enumerate(taught) if t]
    out: list[np.ndarray | None] = [None] * len(observations)
    for start in range(0, len(asked), QUERY_BATCH):
        chunk = asked[start:start + QUERY_BATCH]
        for i, decision in zip(chunk, teacher.decide([observations[i] for i in chunk]), strict=True):
            out[i] = np.asarray(decision.probs, dtype=np.float64)
    return out
