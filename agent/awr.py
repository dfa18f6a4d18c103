"""The default RL update: fit the advantage-weighted improvement of the rollout policy (AWR / MPO-style).

Per distinct input s (a grouped row, `agent.rl`) and legal action a, with Ā(s, a) the row's per-action advantage,
normalised per task — where the model critic applies, Q(s, a) − E_π_old Q(s, ·) from the empirical model of every
stored outcome (`agent.env_model`), known for every action ever tried in s; where GAE does, the mean GAE advantage of
the round's decisions that took a in s, shrunk by n / (n + shrink):

    π_target(a|s) ∝ max(π_old(a|s)·exp(Ā(s,a)/β) / Z(s), floor / |legal(s)|)   (floor: model-critic rows only)

and where the teacher was asked (`agent.kickstart`: in envs where it still plays measurably better than the learner)
π_target ← (1 − k)·π_target + k·π_teacher(·|s), k the kickstart weight;

and the candidate is the rollout policy trained `fit_steps` Adam steps on the cross-entropy to π_target (each batch
holds as many rows of every task, drawn within a task ∝ √(their decisions)) — plus, where the teacher was asked, k times
the cross-entropy to the teacher's own stored decisions (`agent.kickstart.demonstrations`: DAgger's aggregate, as many
of them per batch, drawn uniformly); Adam's state is carried from round to
round (the checkpoint's `.optim.pt`), so a round's few steps are scaled by gradients it has seen, not by a fresh
Adam's sign-like first steps.

Why not PPO (measured, README): a round has a few hundred distinct inputs, so a PPO epoch is a handful of optimizer
steps, and a fresh Adam's first steps moved a distilled student by an approximate KL of 0.1–0.6 in directions its
noisy advantages did not justify. The target here is a fixed, bounded step from π_old (KL ≈ Var(Ā)/2β²); the fit
approaches it with as many steps as the round allows, and the floor keeps sampling every action, so the estimates of
actions the policy has turned away from stay fresh.

The floor is a lower bound, not a mixture: where the critic knows nothing (Ā = 0) and π_old already gives every action
its floor, the target is π_old. A mixture — (1 − floor)·π_old·exp(Ā/β)/Z + floor/|legal| — moved every such input a
fifth of the way to uniform each round, and since a rejected candidate is what the next round trains from, that
compounded: in BabyAI, whose inputs are rarely seen twice, four rounds took the learner's entropy from 1.00 to 1.57
(uniform 1.79) and its rollouts' return from 0.50 to 0.36 (README).

The floor serves the model critic, which values every action ever tried in a state: it keeps them all tried. Rows
whose advantages come from GAE (partial views: BabyAI, TextWorld) get none — an action no decision took has advantage
0 there and keeps π_old's probability, and sampling explores. A floor there lifted a confident distilled BabyAI
student's "pick up", "drop" and "toggle" to 3.3 % each wherever it had nearly ruled them out: its round's target sat at
a KL of 1.34 from π_old, and the candidate lost 0.07 ± 0.03 in sampled return (README).
"""

import copy

import torch
from torch import nn

from agent.kickstart import Demonstrations
from agent.rl import GroupedRows, RlConfig, ValueHead, features_of, forward_rows
from agent.student import agrees_with_teacher
from hrm import Hrm

METRIC_ROWS = 1024
"""Rows the fitted policy is evaluated on for the round's metrics (KL, entropy) when no value head needs every row's
features: a BabyAI round has ~4,000 distinct inputs, and a pass over all of them cost a third of its update."""


def awr_targets(rows: GroupedRows, beta: float, floor: float, kickstart: float = 0.0) -> torch.Tensor:
    """Returns (G, A) log π_target per row (−inf past the legal actions); the floor applies to modelled rows, the
    teacher's share `kickstart` to taught ones."""
    logits = (rows.old_logp + rows.advantage / beta).masked_fill(~rows.legal, float("-inf"))
    legal_count = rows.legal.sum(-1, keepdim=True)
    floors = floor * rows.modelled.unsqueeze(-1).to(logits.dtype) / legal_count
    probs = torch.maximum(torch.softmax(logits, -1), floors) * rows.legal
    probs = probs / probs.sum(-1, keepdim=True)
    share = kickstart * rows.taught.unsqueeze(-1).to(probs.dtype)
    return ((1 - share) * probs + share * rows.teacher * rows.legal).log()


def _teacher_metrics(rows: GroupedRows) -> dict[str, float]:
    """Returns the share of rows the teacher was asked at and, over those decisions, the teacher's probability of the
    action the rollout policy rated highest (how far the learner is from the teacher in its own states)."""
    metrics = {"taught_rows": float(rows.taught.float().mean())}
    if rows.taught.any():
        greedy = rows.old_logp.masked_fill(~rows.legal, float("-inf")).argmax(-1, keepdim=True)
        weight = rows.decisions * rows.taught
        metrics["teacher_agreement"] = float((weight * rows.teacher.gather(-1, greedy).squeeze(-1)).sum()
                                             / weight.sum())
    return metrics


def _demonstration_loss(model: Hrm, demonstrations: Demonstrations, size: int, generator: torch.Generator,
                        precision: str) -> torch.Tensor:
    """Returns the mean cross-entropy to the teacher over `size` demonstrations drawn uniformly."""
    index = torch.randint(len(demonstrations), (size,), generator=generator)
    logp, _ = forward_rows(model, demonstrations.batch, index, precision)
    target = demonstrations.probs[index.to(logp.device)]
    return -(target * logp.masked_fill(target == 0, 0.0)).sum(-1).mean()


def _demonstration_metrics(model: Hrm, demonstrations: Demonstrations | None, config: RlConfig,
                           generator: torch.Generator) -> dict[str, float]:
    """Returns, on a sample of the teacher's decisions, how often the fitted policy's favourite action is one of the
    teacher's best (distillation's agreement, `agrees_with_teacher`, on the data it was distilled from)."""
    if demonstrations is None:
        return {}
    index = torch.randperm(len(demonstrations), generator=generator)[:METRIC_ROWS]
    agree = []
    with torch.no_grad():
        for part in index.split(config.batch_size * 4):
            logp, _ = forward_rows(model.eval(), demonstrations.batch, part, config.precision)
            target = demonstrations.probs[part.to(logp.device)]
            agree.append(agrees_with_teacher(logp, target))
    model.train()
    return {"demonstrations": len(demonstrations), "demonstration_agreement": float(torch.cat(agree).float().mean())}


def _mean_over_decisions(values: torch.Tensor, rows: GroupedRows) -> float:
    weight = rows.decisions
    return float((weight * values).sum() / weight.sum())


def awr_update(model: Hrm, value_head: ValueHead, rows: GroupedRows, config: RlConfig, round_index: int = 0,
               optimizer_state: dict | None = None, demonstrations: Demonstrations | None = None
               ) -> tuple[Hrm, ValueHead, dict[str, float], dict]:
    """Returns (a copy of the policy fitted to the round's target, the value head — refitted on the new features where
    some rows' advantages came from GAE, unchanged where the model critic gave them all —, metrics, the fit's
    optimizer state for the next round). `optimizer_state` continues the previous round's Adam; `demonstrations`
    (the teacher's own decisions) are fitted beside the rows with weight `config.kickstart`."""
    student, critic = copy.deepcopy(model).train(), copy.deepcopy(value_head)
    device = next(model.parameters()).device
    rows = rows.to(device)
    generator = torch.Generator().manual_seed(config.seed + round_index)
    target = awr_targets(rows, config.beta, config.floor, config.kickstart)
    rows_fitted, decisions, taught = len(rows), int(rows.decisions.sum()), _teacher_metrics(rows)
    # Each batch holds the same number of rows of every task (tasks are separate problems sharing one network: Taxi's
    # hundreds of states must not starve FrozenLake's sixteen), drawn within a task ∝ √(their decisions): a cell
    # visited thousands of times is fitted more often than a state seen twice, yet the rare states are fitted too.
    task_of_row = rows.batch["task_ids"].cpu()
    members = [(task_of_row == task).nonzero().squeeze(1) for task in task_of_row.unique()]
    per_task = max(1, config.batch_size // len(members))
    draw = rows.decisions.sqrt().cpu()
    if demonstrations is not None and config.kickstart > 0:
        demonstrations = demonstrations.to(device)
    else:
        demonstrations = None
    optimizer = torch.optim.Adam(student.parameters(), lr=config.fit_lr)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
        for group in optimizer.param_groups:
            group["lr"] = config.fit_lr
    for step in range(config.fit_steps):
        optimizer.zero_grad(set_to_none=True)
        for rows_of_task in members:  # one pass per task: a Taxi row is not computed at FrozenLake's length
            drawn = torch.multinomial(draw[rows_of_task], per_task, replacement=True, generator=generator)
            part = rows_of_task[drawn].to(device)
            logp, _ = forward_rows(student, rows.batch, part, config.precision)
            cross_entropy = -(target[part].exp() * logp.masked_fill(~rows.legal[part], 0.0)).sum(-1)
            (cross_entropy.sum() / (per_task * len(members))).backward()  # the batch mean, accumulated
        if demonstrations is not None:
            (config.kickstart * _demonstration_loss(student, demonstrations, per_task * len(members), generator,
                                                    config.precision)).backward()
        nn.utils.clip_grad_norm_(student.parameters(), config.grad_clip)
        if optimizer_state is None:  # a fresh Adam warms its first steps up
            for group in optimizer.param_groups:
                group["lr"] = config.fit_lr * min(1.0, (step + 1) / 10)
        optimizer.step()
    if not rows.modelled.all():  # GAE's value head follows the new features (its targets: this round's returns)
        logp, features = features_of(student, rows, config.batch_size, config.precision)
        extra = {"value_loss": rows.fit_value_head(critic, features, config, generator)}
    else:  # the model critic needs no value head; the metrics are estimated on a sample of the rows
        sample = torch.randperm(len(rows), generator=generator)[:METRIC_ROWS].sort().values
        rows, target = rows.subset(sample), target[sample.to(device)]
        logp, _ = features_of(student, rows, config.batch_size, config.precision)
        extra = {}
    legal = rows.legal
    safe, old = (t.masked_fill(~legal, 0.0) for t in (logp, rows.old_logp))
    probs, goal_p = safe.exp() * legal, target.exp() * legal
    goal = target.masked_fill(goal_p == 0, 0.0)  # 0·log 0 = 0 (kickstart 1: the teacher rules actions out)
    metrics = {"kl_target": _mean_over_decisions((goal_p * (goal - safe)).sum(-1), rows),
               "approx_kl": _mean_over_decisions((probs * (safe - old)).sum(-1), rows),
               "target_kl_old": _mean_over_decisions((goal_p * (goal - old)).sum(-1), rows),
               "entropy": _mean_over_decisions(-(probs * safe).sum(-1), rows),
               **extra, **taught, **_demonstration_metrics(student, demonstrations, config, generator),
               "rows": rows_fitted, "decisions": decisions,
               "epochs": config.fit_steps * per_task * len(members) / rows_fitted}
    return student.eval(), critic, metrics, optimizer.state_dict()
