"""The HRM student as a policy: reads the compact observation, scores each legal action at its answer slots."""

from pathlib import Path

import numpy as np
import torch

from agent.policy import Decision, Observation, decision_from_scores
from agent.student import StudentEncoder, candidate_log_probs
from hrm import Hrm, load_model


class HrmPolicy:
    """Batched decisions from an HRM with adaptive halting (halt_max_steps stays the bound)."""

    def __init__(self, model: Hrm, version: int | None = None, adaptive: bool = True, temperature: float = 1.0,
                 seed: int = 0):
        self.model = model.eval()
        self.version = version
        self.name = "hrm" if version is None else f"hrm:v{version}"
        self.adaptive = adaptive
        self.temperature = temperature
        self.encoder = StudentEncoder.for_model(model)
        self.rng = np.random.default_rng(seed)
        self.last_steps: list[int] = []
        """ACT segments each observation of the last decide() used."""

    @classmethod
    def load(cls, checkpoint: str | Path, version: int | None = None, device: str | None = None,
             **kwargs) -> "HrmPolicy":
        """Returns the policy of the HRM stored in `checkpoint` (raises hrm.CheckpointError if unreadable)."""
        return cls(load_model(checkpoint, device), version, **kwargs)

    def batch(self, observations: list[Observation]) -> dict[str, torch.Tensor]:
        """Returns the model inputs for `observations` on the model's device."""
        items = [(o.text, o.legal_actions, o.task_id) for o in observations]
        device = next(self.model.parameters()).device
        return {k: v.to(device) for k, v in self.encoder.encode(items).items()}

    @torch.no_grad()
    def action_scores(self, observations: list[Observation]) -> torch.Tensor:
        """Returns (N, A) summed answer-slot log-probabilities of each legal action (−inf past an observation's A)."""
        batch = self.batch(observations)
        prediction = self.model.predict(batch, adaptive=self.adaptive)
        self.last_steps = prediction.steps.tolist()
        return candidate_log_probs(prediction.logits, batch["candidates"]).cpu()

    def decide(self, observations: list[Observation], greedy: bool = False) -> list[Decision]:
        """Returns one decision per observation: softmax over its legal actions' scores, argmax or a sample."""
        scores = self.action_scores(observations).double().numpy()
        return [decision_from_scores(row[:len(obs.legal_actions)], self.rng, greedy, self.temperature)
                for row, obs in zip(scores, observations, strict=True)]
