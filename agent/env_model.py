"""What the agent has learnt of its environments from its own recorded outcomes, and the action values that follow.

Every stored decision of an env (whoever made it: the teacher, the HRM acting, RL rollouts) is one sample of the
env's dynamics: in input s the agent took a, got reward r and next saw s' (or the episode ended). Counted per
(s, a), these give an empirical model — mean reward and next-input frequencies — and value iteration on it gives
Q(s, a) = r̄(s, a) + γ Σ_s' P̂(s' | s, a) max_a' Q(s', a') over the actions ever tried. This is the default critic of
RL (`RlConfig.critic = "model"`): unlike a value head fitted to one round's returns it uses every outcome ever
recorded (the dynamics do not depend on the policy that produced them), so a single success — a Taxi passenger
delivered once — gives value to every input the agent has seen lead to it, and an action's advantage is known in any
input where it was ever tried.

Inputs are the student's (observation text, legal actions, task id): where the observation is the env's state (the
gymnasium toy-text games) the model is exact in the limit; where it is not (BabyAI's partial view) inputs that look
alike are merged and the values are an approximation. An episode cut by the time limit says nothing about what came
next, so its last decision is not a sample.

Anything unknown is worth 0: an input never acted on, and an action never tried (so V(s) is at least 0 while s has an
untried action). Where rewards are mostly costs (Taxi's −1 a step) this is optimism in the face of the unknown: an
untried action gets a positive advantage and is tried, and the inputs that still have untried actions draw the
policy towards them — how a start that never delivered a passenger finds the delivery. Where rewards are gains
(FrozenLake's goal) it is neutral.

The model is refreshed incrementally: each `refresh` streams only the decisions written since the last one.
"""

import json
from collections.abc import Sequence

import numpy as np

from data.store import ExperienceStore, Outcome

StudentInput = tuple[str, tuple[str, ...], int]
"""What the student reads: (observation text, legal action names, task id)."""

_TERMINAL = -1


class EnvModel:
    """The empirical model of `envs` built from a store's decisions, and Q by value iteration on it."""

    def __init__(self, envs: Sequence[str]):
        self.envs = list(envs)
        self.after = 0
        """The newest decision id already counted."""
        self.index: dict[tuple[int, int, int], int] = {}
        """(observation id, legal actions id, task id) → state number."""
        self.inputs: dict[StudentInput, int] = {}
        """The student's input → state number."""
        self.legal_count: dict[int, int] = {}
        """State number → how many legal actions it has."""
        self.visits: dict[tuple[int, int], int] = {}
        self.reward_sum: dict[tuple[int, int], float] = {}
        self.next_counts: dict[tuple[int, int], dict[int, int]] = {}
        self.pending: dict[int, tuple[Outcome, int]] = {}
        """Per open episode, its latest decision (and state number), waiting for the input that followed it."""

    def __len__(self) -> int:
        """Returns the number of (input, action) pairs with at least one outcome."""
        return len(self.visits)

    def _state(self, o: Outcome) -> int:
        return self.index.setdefault((o.observation_id, o.legal_actions_id, o.task_id), len(self.index))

    def _add(self, state: int, o: Outcome, next_state: int) -> None:
        pair = (state, o.chosen)
        self.visits[pair] = self.visits.get(pair, 0) + 1
        self.reward_sum[pair] = self.reward_sum.get(pair, 0.0) + o.reward
        nexts = self.next_counts.setdefault(pair, {})
        nexts[next_state] = nexts.get(next_state, 0) + 1

    def refresh(self, store: ExperienceStore) -> int:
        """Counts the decisions written since the last refresh; returns how many there were."""
        known, seen = len(self.index), 0
        for o in store.outcomes(self.envs, after=self.after):
            seen += 1
            self.after = o.id
            state = self._state(o)
            previous = self.pending.pop(o.episode_id, None)
            if previous is not None and previous[0].step == o.step - 1:
                self._add(previous[1], previous[0], state)
            if o.terminated:
                self._add(state, o, _TERMINAL)
            elif not o.truncated:
                self.pending[o.episode_id] = (o, state)
        fresh = list(self.index)[known:]  # state numbers follow insertion order
        if fresh:
            texts = store.texts({i for key in fresh for i in key[:2]})
            for key in fresh:
                student_input = (texts[key[0]], tuple(json.loads(texts[key[1]])), key[2])
                self.inputs[student_input] = self.index[key]
                self.legal_count[self.index[key]] = len(student_input[1])
        return seen

    def q_values(self, gamma: float, tolerance: float = 1e-6,
                 max_iterations: int = 5000) -> dict[int, dict[int, float]]:
        """Returns Q per state number and tried action, by value iteration on the empirical model (an untried action
        counts as worth 0)."""
        pairs = list(self.visits)
        if not pairs:
            return {}
        states = np.array([s for s, _ in pairs])
        mean_reward = np.array([self.reward_sum[p] / self.visits[p] for p in pairs])
        rows, targets, probs = [], [], []
        for row, p in enumerate(pairs):
            total = self.visits[p]
            for nxt, count in self.next_counts[p].items():
                rows.append(row)
                targets.append(len(self.index) if nxt == _TERMINAL else nxt)  # the terminal slot is worth 0
                probs.append(count / total)
        rows, targets, probs = np.array(rows), np.array(targets), np.array(probs)
        tried = np.bincount(states, minlength=len(self.index) + 1)
        legal = np.array([self.legal_count.get(s, 0) for s in range(len(self.index))] + [0])
        floor = np.where(tried < legal, 0.0, -np.inf)  # an untried action is worth 0; so is an unknown input
        floor[tried == 0] = 0.0
        value = np.zeros(len(self.index) + 1)
        for _ in range(max_iterations):
            q = mean_reward + gamma * np.bincount(rows, weights=probs * value[targets], minlength=len(pairs))
            new_value = floor.copy()
            np.maximum.at(new_value, states, q)
            change = np.abs(new_value - value).max()
            value = new_value
            if change < tolerance:
                break
        out: dict[int, dict[int, float]] = {}
        for (s, a), v in zip(pairs, q.tolist(), strict=True):
            out.setdefault(s, {})[a] = v
        return out

    def advantages(self, inputs: Sequence[StudentInput], probs: Sequence[np.ndarray], gamma: float
                   ) -> list[np.ndarray]:
        """Returns, per input, Q(s, a) − Σ_a' π(a'|s) Q(s, a') over its legal actions (`probs`: the rollout policy's
        distribution; an untried action's Q is 0, so an input never acted on gets 0 everywhere)."""
        q = self.q_values(gamma)
        out = []
        for student_input, p in zip(inputs, probs, strict=True):
            values = np.zeros(len(p))
            for action, value in q.get(self.inputs.get(student_input, -1), {}).items():
                values[action] = value
            out.append(values - p @ values)
        return out
