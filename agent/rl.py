"""Policy-gradient fine-tuning of the HRM student on its own episodes (REINFORCE with a per-task baseline).

loss = −Σ A·log π(a|s) − β·H(π(·|s)) + λ·KL(π(·|s) ‖ π_ref(·|s)), averaged over decisions, where A is the
return-to-go minus the mean return-to-go of the same task in the batch (scaled by that task's spread), and π_ref
is the frozen distilled model, so improvement does not forget what the teacher taught. log π is the policy that
acted (adaptive halting, as `HrmPolicy` decides); as in HRM training, the gradient flows through the segment a row
halted in only (the one-step approximation).
"""

import copy
from dataclasses import dataclass

import numpy as np
import torch

from data.datasets import StudentEncoder
from data.store import DecisionRecord
from hrm import Hrm
from hrm.losses import candidate_log_probs


@dataclass(frozen=True)
class RlConfig:
    """Settings of one policy-gradient update."""

    lr: float = 3e-5
    epochs: int = 2
    """Passes over the collected decisions."""
    batch_size: int = 32
    gamma: float = 0.99
    entropy: float = 0.01
    """Weight of the entropy bonus."""
    kl: float = 0.05
    """Weight of the KL penalty to the distilled reference."""
    grad_clip: float = 1.0
    max_decisions: int = 2048
    """Decisions one update trains on: a uniform sample of the round's (advantages come from whole episodes first),
    so a round of long, failing episodes costs no more than a round of short ones."""
    seed: int = 0


def returns_to_go(rewards: list[float], gamma: float) -> list[float]:
    """Returns G_t = r_t + γ G_{t+1} for every step of one episode."""
    out, running = [], 0.0
    for reward in reversed(rewards):
        running = reward + gamma * running
        out.append(running)
    return out[::-1]


def advantages(decisions: list[DecisionRecord], gamma: float) -> np.ndarray:
    """Returns one advantage per decision: return-to-go normalised within its task (per-task baseline)."""
    by_episode: dict[int, list[int]] = {}
    for i, d in enumerate(decisions):
        by_episode.setdefault(d.episode_id, []).append(i)
    g = np.zeros(len(decisions))
    for rows in by_episode.values():
        rows.sort(key=lambda i: decisions[i].step)
        g[rows] = returns_to_go([decisions[i].reward for i in rows], gamma)
    out = np.zeros_like(g)
    tasks = np.array([d.task_id for d in decisions])
    for task in np.unique(tasks):
        mask = tasks == task
        out[mask] = (g[mask] - g[mask].mean()) / (g[mask].std() + 1e-8)
    return out


def policy_log_probs(model: Hrm, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Returns (B, A) log π over the candidate actions as `HrmPolicy` acts: each row runs segments until Q-halt >
    Q-continue (or halt_max_steps), and only the segment it halted in carries gradient (the one-step approximation).
    """
    x = model.embed(batch["inputs"], batch["task_ids"])
    carry = model.initial_carry(batch)
    z_H, z_L = carry.z_H, carry.z_L
    halting_H, halting_L = z_H.clone(), z_L.clone()  # each row's state entering the segment it halts in
    done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    with torch.no_grad():
        for step in range(1, model.config.halt_max_steps + 1):
            next_H, next_L = model.segment(z_H, z_L, x)
            q_halt, q_continue = model.q_values(next_H)
            stop = ~done & ((q_halt > q_continue) | (step == model.config.halt_max_steps))
            halting_H[stop], halting_L[stop] = z_H[stop], z_L[stop]
            done |= stop
            if done.all():
                break
            z_H, z_L = next_H, next_L
    z_H, _ = model.segment(halting_H, halting_L, x)
    return torch.log_softmax(candidate_log_probs(model.answer(z_H), batch["candidates"]), dim=-1)


def reinforce(model: Hrm, decisions: list[DecisionRecord], config: RlConfig) -> tuple[Hrm, dict[str, float]]:
    """Returns (an improved copy of `model`, update metrics) trained on `decisions` of complete episodes."""
    reference = copy.deepcopy(model).eval()
    student = copy.deepcopy(model).train()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(config.seed)
    advantage = torch.tensor(advantages(decisions, config.gamma), dtype=torch.float32)
    if len(decisions) > config.max_decisions:
        keep = torch.randperm(len(decisions), generator=generator)[:config.max_decisions].sort().values
        decisions, advantage = [decisions[i] for i in keep.tolist()], advantage[keep]
    advantage = advantage.to(device)
    encoder = StudentEncoder(model.config.seq_len, model.config.output_len)
    batch = encoder.encode([(d.observation, d.legal_actions, d.task_id) for d in decisions])
    batch = {k: v.to(device) for k, v in batch.items()}
    chosen = torch.tensor([d.chosen for d in decisions], device=device)
    with torch.no_grad():
        ref_logp = torch.cat([policy_log_probs(reference, {k: v[i:i + 256] for k, v in batch.items()})
                              for i in range(0, len(decisions), 256)])
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=0.0)
    totals = {"pg_loss": 0.0, "entropy": 0.0, "kl": 0.0}
    updates = 0
    for _ in range(config.epochs):
        for rows in torch.randperm(len(decisions), generator=generator).split(config.batch_size):
            rows = rows.to(device)
            logp = policy_log_probs(student, {k: v[rows] for k, v in batch.items()})
            valid = batch["candidates"][rows].ne(-100).any(-1)
            probs = logp.exp()
            safe = logp.masked_fill(~valid, 0.0)
            entropy = -(probs * safe).sum(-1)
            kl = (probs * (safe - ref_logp[rows].masked_fill(~valid, 0.0))).sum(-1)
            pg = -(advantage[rows] * logp.gather(-1, chosen[rows, None]).squeeze(-1))
            loss = (pg - config.entropy * entropy + config.kl * kl).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), config.grad_clip)
            optimizer.step()
            totals["pg_loss"] += pg.mean().item()
            totals["entropy"] += entropy.mean().item()
            totals["kl"] += kl.mean().item()
            updates += 1
    return student.eval(), {k: v / max(updates, 1) for k, v in totals.items()} | {
        "decisions": len(decisions), "episodes": len({d.episode_id for d in decisions}), "updates": updates}
