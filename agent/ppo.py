"""PPO for the HRM student: the clipped surrogate on a round's grouped rows (`agent.rl`), selectable with
`RlConfig(update="ppo")` / `--rl-update ppo`.

    loss = Σ_rows [ −min(ρ·A, clip(ρ, 1±ε)·A) + c_v·(V(s) − R)² − β·H(π(·|s)) + λ·KL(π(·|s) ‖ π_ref(·|s)) ] / rows

with ρ = π(a|s) / π_old(a|s), π_ref the distilled model (a kickstart term whose weight decays round by round), the
value head fitted alone first (critic warm-up), and an epoch loop that stops once the approximate KL to π_old passes
`ppo_target_kl`. Anchors: GLAM / lamorel and TWOSOME (PPO with a value head on the LM's state, GAE, clip 0.2, small
policy lr, larger value lr), LLM4Teach (a decaying cross-entropy to the teacher). Measured on the competence benchmark
it collapses a distilled student's entropy or is rejected round after round (README); `agent.awr` is the default.
"""

import copy

import torch
from torch import nn

from agent.rl import GroupedRows, RlConfig, ValueHead, features_of, forward_rows
from agent.student import by_length
from hrm import Hrm


def ppo_loss(logp: torch.Tensor, values: torch.Tensor, ref_logp: torch.Tensor, rows: GroupedRows,
             index: torch.Tensor, config: RlConfig, kl_coef: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Returns (loss summed over the decisions the rows stand for, per-term sums) for (G, A) log π, (G,) values and
    (G, A) reference log-probabilities of the rows at `index`."""
    legal = torch.isfinite(logp)
    safe = logp.masked_fill(~legal, 0.0)
    ratio = torch.exp(safe - rows.old_logp[index])  # (G, A)
    clipped = ratio.clamp(1 - config.ppo_clip, 1 + config.ppo_clip)
    pg = -(torch.minimum(ratio, clipped) * rows.adv_pos[index] + torch.maximum(ratio, clipped) * rows.adv_neg[index])
    n = rows.decisions[index]
    value = n * values ** 2 - 2 * values * rows.ret_sum[index] + rows.ret_sq[index]
    probs = safe.exp() * legal
    entropy = -(probs * safe).sum(-1)
    kl = (probs * (safe - ref_logp.masked_fill(~legal, 0.0))).sum(-1)
    terms = {"pg_loss": pg.sum(), "value_loss": value.sum(), "entropy": (n * entropy).sum(), "kl_ref": (n * kl).sum()}
    loss = (terms["pg_loss"] + config.ppo_value_coef * terms["value_loss"] - config.ppo_entropy * terms["entropy"]
            + kl_coef * terms["kl_ref"])
    return loss, terms


def ppo_update(model: Hrm, value_head: ValueHead, reference: Hrm, rows: GroupedRows, config: RlConfig,
               round_index: int = 0) -> tuple[Hrm, ValueHead, dict[str, float]]:
    """Returns (a trained copy of the policy, its trained value head, metrics) from one round's grouped rows."""
    student, critic = copy.deepcopy(model).train(), copy.deepcopy(value_head).train()
    device = next(model.parameters()).device
    rows = rows.to(device)
    generator = torch.Generator().manual_seed(config.seed + round_index)
    kl_coef = config.ppo_kl * config.ppo_kl_decay ** round_index
    decisions = float(rows.decisions.sum())
    chunks = by_length(rows.batch, config.ppo_batch_size)
    # the fixed reference distribution
    ref_logp, _ = features_of(reference, rows, config.ppo_batch_size, config.precision)
    _, features = features_of(student, rows, config.ppo_batch_size, config.precision)
    rows.fit_value_head(critic, features, config, generator)  # critic warm-up before the policy moves
    student.train()
    critic.train()
    optimizer = torch.optim.AdamW([{"params": student.parameters(), "lr": config.ppo_lr},
                                   {"params": critic.parameters(), "lr": config.value_lr}], weight_decay=0.0)
    totals = {"pg_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "kl_ref": 0.0}
    epochs_run, approx_kl = 0, 0.0
    for _ in range(config.ppo_epochs):
        order = [chunks[i] for i in torch.randperm(len(chunks), generator=generator).tolist()]
        epoch_totals = dict.fromkeys(totals, 0.0)
        kl_sum = 0.0
        for index in order:
            logp, state = forward_rows(student, rows.batch, index, config.precision)
            loss, terms = ppo_loss(logp, critic(state.float()), ref_logp[index], rows, index, config, kl_coef)
            optimizer.zero_grad(set_to_none=True)
            (loss / float(rows.decisions[index].sum())).backward()
            nn.utils.clip_grad_norm_(student.parameters(), config.grad_clip)
            optimizer.step()
            for k, v in terms.items():
                epoch_totals[k] += v.item()
            with torch.no_grad():  # Σ over decisions of log π_old(a|s) − log π(a|s)
                taken = logp.masked_fill(~torch.isfinite(logp), 0.0)
                kl_sum += float((rows.count[index] * (rows.old_logp[index] - taken)).sum())
        epochs_run += 1
        totals = epoch_totals
        approx_kl = kl_sum / decisions
        if approx_kl > config.ppo_target_kl:
            break
    metrics = {k: v / decisions for k, v in totals.items()} | {
        "approx_kl": approx_kl, "epochs": epochs_run, "rows": len(rows), "decisions": int(decisions),
        "kl_coef": kl_coef}
    return student.eval(), critic.eval(), metrics
