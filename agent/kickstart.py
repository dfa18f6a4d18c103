"""Kickstarting: where the teacher still plays measurably better than the learner, an RL round's target leans towards
what the teacher would do in the inputs the learner's own rollouts reached (Schmitt et al. 2018, "Kickstarting deep
reinforcement learning": a teacher's cross-entropy on the student's trajectories, weighted beside the RL objective).

Distillation copies the teacher in the teacher's states; once the student acts it reaches states the teacher never
did (BabyAI's distilled student loops where the bot never would) and nothing it learnt says how to leave them. Asking
the teacher there is the correction imitation alone lacks (DAgger's point); mixed into the AWR target
(`agent.awr.awr_targets`) it makes each round a step on the learner's outcomes and a step towards the teacher.

The teacher's say is gated per env by outcomes, not by a schedule: only while its stored episodes return more than
the round's rollouts by more than two standard errors. A teacher no better than its student (the random `tiny`
GPT-2; GPT-2 once RL has passed it) has none, so RL is free to leave it behind.
"""

from collections.abc import Sequence

import numpy as np

from agent.policy import Observation, Policy
from data.store import ExperienceStore

TEACHER_EPISODES = 1000
"""The teacher's most recent stored episodes per env that measure how well it plays."""
QUERY_BATCH = 64


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
