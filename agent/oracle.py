"""The oracle teacher: the exact optimal policy of each env, softened by a temperature and mixed with ε-noise."""

import numpy as np

from agent.envs import TextEnv, make_env
from agent.policy import Decision, Observation, decision_from_probs


class OracleTeacher:
    """Acts with probabilities (1 - ε) · softmax(Q*(s, ·) / temperature) + ε / |legal actions|.

    Q* comes from each env's `optimal_q` (value iteration on `env.unwrapped.P`, exact DP for Blackjack); an env with
    an expert instead (the BabyAI bot) gives its action all of the (1 − ε) share. The default
    temperature 0.01 is small next to most gaps between the best and second-best action (median 1 in Taxi, 2 in
    CliffWalking, 0.23 in FrozenLake 4x4, 0.03 in 8x8), so the oracle is near-greedy but keeps close calls soft.

    Example:
        >>> from agent.envs import make_env
        >>> env = make_env("CliffWalking-v1")
        >>> obs = Observation(env.name, env.task_id, "", tuple(env.legal_actions()), env.reset(seed=0))
        >>> [round(p, 6) for p in OracleTeacher(epsilon=0.2).decide([obs], greedy=True)[0].probs]
        [0.85, 0.05, 0.05, 0.05]
    """

    def __init__(self, temperature: float = 0.01, epsilon: float = 0.0, seed: int = 0):
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.temperature = temperature
        self.epsilon = epsilon
        self.name = "oracle" if epsilon == 0 else f"oracle:{epsilon:g}"
        self.version = None
        self._rng = np.random.default_rng(seed)
        self._envs: dict[str, TextEnv] = {}  # one per env name: the source of optimal_q

    def probs(self, observation: Observation) -> np.ndarray:
        """Return the oracle's probabilities over `observation.legal_actions`."""
        if observation.env_name not in self._envs:
            self._envs[observation.env_name] = make_env(observation.env_name)
        env = self._envs[observation.env_name]
        q = env.optimal_q(observation.state)
        if q is not None:
            legal_q = q[[env.action_names.index(action) for action in observation.legal_actions]]
            soft = np.exp((legal_q - legal_q.max()) / self.temperature)
            soft /= soft.sum()
        else:  # an expert instead of Q* (the BabyAI bot, TextWorld's winning commands): its action, or uniform where
            # it has none
            if type(env).expert_action is TextEnv.expert_action:
                raise ValueError(f"{observation.env_name} has no optimal Q-values, so the oracle cannot act in it")
            expert, legal = env.expert_action(observation.state), observation.legal_actions
            soft = np.array([float(a == expert) for a in legal]) if expert in legal else np.ones(len(legal))
            soft /= soft.sum()
        return (1.0 - self.epsilon) * soft + self.epsilon / len(soft)

    def decide(self, observations: list[Observation], greedy: bool = False) -> list[Decision]:
        """Return one Decision per observation: sampled from the oracle's probabilities, or their argmax if greedy."""
        return [decision_from_probs(self.probs(obs), self._rng, greedy) for obs in observations]
