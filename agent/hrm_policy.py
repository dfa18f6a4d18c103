"""The HRM student as a policy: reads the compact observation, scores each legal action at its answer slots."""

from pathlib import Path

import numpy as np
import torch

from agent.policy import Decision, Observation, decision_from_scores
from agent.student import StudentEncoder, by_length, candidate_log_probs
from hrm import Hrm, load_model
from hrm.device import autocast, resolve_precision


class HrmPolicy:
    """Batched decisions from an HRM with adaptive halting (halt_max_steps stays the bound). `precision` is the
    autocast dtype of its forward pass ("auto": bf16 where the hardware runs it natively, `hrm.device.native_bf16`)."""

    def __init__(self, model: Hrm, version: int | None = None, adaptive: bool = True, temperature: float = 1.0,
                 seed: int = 0, memo_size: int = 100_000, precision: str = "auto"):
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.precision = resolve_precision(precision, self.device)
        self.version = version
        self.name = "hrm" if version is None else f"hrm:v{version}"
        self.adaptive = adaptive
        self.temperature = temperature
        self.encoder = StudentEncoder.for_model(model)
        self.rng = np.random.default_rng(seed)
        self.last_steps: list[int] = []
        """ACT segments each observation of the last action_scores() used."""
        self.memo: dict[tuple, np.ndarray] = {}
        """Action scores per distinct input: the weights never change, so each input is evaluated once (sampling
        still draws per decision). Cleared when it would hold more than `memo_size` inputs; 0 turns it off."""
        self.memo_size = memo_size

    @classmethod
    def load(cls, checkpoint: str | Path, version: int | None = None, device: str | None = None,
             **kwargs) -> "HrmPolicy":
        """Returns the policy of the HRM stored in `checkpoint` (raises hrm.CheckpointError if unreadable)."""
        return cls(load_model(checkpoint, device), version, **kwargs)

    def batch(self, observations: list[Observation]) -> dict[str, torch.Tensor]:
        """Returns the model inputs for `observations` on the model's device."""
        items = [(o.text, o.legal_actions, o.task_id) for o in observations]
        return {k: v.to(self.device) for k, v in self.encoder.encode(items).items()}

    @torch.no_grad()
    def action_scores(self, observations: list[Observation]) -> torch.Tensor:
        """Returns (N, A) summed answer-slot log-probabilities of each legal action (−inf past an observation's A).

        Observations of similar length run together, so the HRM computes little on padding."""
        batch = self.batch(observations)
        scores = torch.empty(batch["candidates"].shape[:2])
        steps = torch.empty(len(observations), dtype=torch.int32)
        for rows in by_length(batch, len(observations)):
            part = {k: v[rows] for k, v in batch.items()}
            with autocast(self.device, self.precision):
                prediction = self.model.predict(part, adaptive=self.adaptive)
            steps[rows.cpu()] = prediction.steps.cpu()
            scores[rows.cpu()] = candidate_log_probs(prediction.logits, part["candidates"]).cpu()
        self.last_steps = steps.tolist()
        return scores

    def decide(self, observations: list[Observation], greedy: bool = False) -> list[Decision]:
        """Returns one decision per observation: softmax over its legal actions' scores, argmax or a sample."""
        if self.memo_size == 0:
            scores = self.action_scores(observations).double().numpy()
            return [decision_from_scores(row[:len(o.legal_actions)], self.rng, greedy, self.temperature)
                    for row, o in zip(scores, observations, strict=True)]
        keys = [(o.text, o.legal_actions, o.task_id) for o in observations]
        new = list({k: o for k, o in zip(keys, observations, strict=True) if k not in self.memo}.items())
        if new:
            if len(self.memo) + len(new) > self.memo_size:
                self.memo.clear()
            scores = self.action_scores([o for _, o in new]).double().numpy()
            self.memo.update((k, row[:len(o.legal_actions)]) for (k, o), row in zip(new, scores, strict=True))
        return [decision_from_scores(self.memo[k], self.rng, greedy, self.temperature) for k in keys]
