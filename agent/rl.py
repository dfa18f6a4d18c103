"""What every RL update of the HRM shares: its settings, a value head, memoised rollouts, GAE, and grouped rows.

One round: the fixed policy plays a budget of episodes (each distinct input is evaluated once and its distribution
reused; sampling still draws per decision), every decision is recorded in the store, a critic gives each decision
and each legal action an advantage — the empirical model of every stored outcome (`agent.env_model`) where an env's
text is its state, GAE with the value head where it is a partial view (`RlConfig.critic`) — and the decisions on one
input become one row (one forward pass serves all of them). The update that turns the rows into a better policy is
`agent.awr` (the default: fit the advantage-weighted improvement of the rollout policy) or `agent.ppo` (the clipped
surrogate).

Grouping is exact: for the decisions on one input that took one action the ratio is one number, so
Σ_i min(ρA_i, clip(ρ)A_i) = min(ρ, clip ρ)·ΣA⁺ + max(ρ, clip ρ)·ΣA⁻, and Σ_i (V − R_i)² = n·V² − 2V·ΣR + ΣR².
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from agent.env_model import EnvModel
from agent.envs import TextEnv
from agent.envs.seeds import training_seeds
from agent.policy import Decision, Observation, softmax
from agent.runner import Game, step_and_record
from agent.student import StudentEncoder, acting_log_probs, by_length
from data.store import EpisodeStart, ExperienceStore
from hrm import Hrm
from hrm.device import autocast, resolve_precision


@dataclass(frozen=True)
class RlConfig:
    """Settings of one RL round (the defaults are the recipe `bench/competence.py` measures)."""

    update: Literal["awr", "ppo"] = "awr"
    """How a round's rows become a candidate: "awr" fits π_old·exp(A/β) (agent.awr), "ppo" the clipped surrogate
    (agent.ppo)."""
    critic: Literal["auto", "model", "gae"] = "auto"
    """Where advantages come from: "model" — Q by value iteration on the empirical model of every outcome the store
    holds (agent.env_model); "gae" — GAE(γ, λ) on the round's returns with the value head; "auto" — per env, the
    model where the env's text is its state (`TextEnv.text_is_state`: its inputs recur, and are states), GAE where
    it is a partial view whose inputs are rarely seen twice (BabyAI, TextWorld)."""
    rollout_decisions: int = 32_768
    """Decisions a round plays (episodes already started are finished, so every recorded episode is complete)."""
    rollout_minutes: float = 3.0
    """... or fewer: no episode starts after this many minutes of rollouts. The default envs play their decisions in
    well under a minute; a slow env (TextWorld's interpreter, BabyAI's distinct views: 5–6 minutes for 32,768) gets a
    round of minutes, not a quarter of an hour."""
    games_per_env: int = 16
    """Games of each env stepped in lockstep during rollouts."""
    gamma: float = 0.99
    gae_lambda: float = 0.8
    """GAE's λ: below 1 the advantages lean on the value head and their variance drops."""
    value_lr: float = 1e-3
    """Learning rate of the value head."""
    value_epochs: int = 100
    """Epochs fitting the value head on cached features (cheap: a small MLP on a few hundred rows)."""
    batch_size: int = 16
    """Grouped rows per optimizer step."""
    precision: Literal["auto", "none", "bf16"] = "auto"
    """Autocast dtype of the rollouts' and the update's forward passes ("auto": bf16 where the hardware runs it
    natively — CUDA, a CPU with AMX or AVX512-BF16 —, fp32 elsewhere; `hrm.device.native_bf16`)."""
    grad_clip: float = 1.0
    seed: int = 0
    # --- awr -------------------------------------------------------------------------------------------------------
    beta: float = 0.5
    """AWR: temperature on the per-task normalised advantages (lower = greedier steps)."""
    floor: float = 0.2
    """AWR: share of the target spread uniformly over the legal actions, so every action keeps being tried — where
    the model critic gives the advantages (GAE's rows get none: `agent.awr`)."""
    shrink: float = 2.0
    """AWR with the "gae" critic: an action's mean advantage is shrunk by n / (n + shrink) when n decisions took it."""
    fit_steps: int = 96
    """AWR: optimizer steps fitting the target per round, however few rows there are."""
    fit_lr: float = 3e-4
    """AWR: learning rate of the fit (Adam, its state carried from round to round)."""
    kickstart: float = 1.0
    """AWR: share of the target given to the teacher's choices at the learner's own inputs, and the weight of the
    teacher's own stored decisions fitted beside them (DAgger's aggregate), in envs where the teacher's stored episodes
    still return measurably more than the round's rollouts (`agent.kickstart`); 0 never asks the teacher. On BabyAI a
    round with 1 gained 0.165 ± 0.028 in sampled return where the same round with 0 gained 0.042 (README)."""
    # --- ppo -------------------------------------------------------------------------------------------------------
    ppo_lr: float = 1e-4
    """PPO: learning rate of the policy."""
    ppo_clip: float = 0.2
    """PPO: the ratio clip ε."""
    ppo_value_coef: float = 0.5
    ppo_entropy: float = 0.01
    """PPO: weight of the entropy bonus."""
    ppo_kl: float = 0.05
    """PPO: weight of KL(π ‖ π_ref) to the distilled model in the first round (kickstarting) ..."""
    ppo_kl_decay: float = 0.7
    """PPO: ... multiplied by this every round, so RL is free to leave the teacher behind."""
    ppo_epochs: int = 4
    """PPO: epochs over the round's grouped rows (fewer when ppo_target_kl stops them)."""
    ppo_batch_size: int = 64
    ppo_target_kl: float = 0.03
    """PPO: stop the epochs once the mean approximate KL(π_old ‖ π) over the round's decisions passes this."""


class ValueHead(nn.Module):
    """V(s) from the HRM's state at the first position (where the Q head reads), detached: the critic learns on the
    policy's features without reshaping them."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.SiLU(), nn.Linear(hidden_size, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """Returns (B,) values for (B, D) first-position states."""
        return self.net(state.detach().float()).squeeze(-1)


def _key(observation: Observation) -> tuple:
    return observation.text, observation.legal_actions, observation.task_id


class RlPolicy:
    """The HRM and its value head as a policy; with `memoise`, each distinct input is evaluated once (the policy is
    fixed while it plays) and sampling draws from the stored distribution."""

    def __init__(self, model: Hrm, value_head: ValueHead, version: int | None = None, seed: int = 0,
                 memoise: bool = True, batch_size: int = 64, precision: str = "auto"):
        self.model, self.value_head = model.eval(), value_head.eval()
        self.precision = precision
        self.version = version
        self.name = "hrm" if version is None else f"hrm:v{version}"
        self.encoder = StudentEncoder.for_model(model)
        self.rng = np.random.default_rng(seed)
        self.memoise, self.batch_size = memoise, batch_size
        self.memo: dict[tuple, tuple[np.ndarray, float]] = {}
        self.evaluations = 0
        """Inputs the model has evaluated (a memoised policy evaluates each distinct input once)."""

    @torch.no_grad()
    def evaluate(self, observations: Sequence[Observation]) -> list[tuple[np.ndarray, float]]:
        """Returns (probabilities over the legal actions, value) per observation."""
        todo = list({_key(o): o for o in observations if not (self.memoise and _key(o) in self.memo)}.values())
        fresh: dict[tuple, tuple[np.ndarray, float]] = {}
        if todo:
            batch = self.encoder.encode([_key(o) for o in todo])
            for rows in by_length(batch, self.batch_size):
                logp, state = forward_rows(self.model, batch, rows, self.precision)
                values = self.value_head(state.float())
                for r, lp, v in zip(rows.tolist(), logp.double().cpu().numpy(), values.tolist(), strict=True):
                    n = len(todo[r].legal_actions)
                    fresh[_key(todo[r])] = (softmax(lp[:n]), float(v))
            self.evaluations += len(todo)
            if self.memoise:
                self.memo.update(fresh)
        table = self.memo if self.memoise else fresh
        return [table[_key(o)] for o in observations]

    def choose(self, probs: np.ndarray, greedy: bool = False) -> Decision:
        """Returns the decision for a distribution: a sample drawn with the policy's rng, or the argmax."""
        action = int(np.argmax(probs)) if greedy else int(self.rng.choice(len(probs), p=probs))
        return Decision(action, tuple(float(p) for p in probs))

    def decide(self, observations: list[Observation], greedy: bool = False) -> list[Decision]:
        """Returns one decision per observation: a sample from its distribution, or the argmax when greedy."""
        return [self.choose(probs, greedy) for probs, _ in self.evaluate(observations)]


@dataclass
class Step:
    """One decision of a rollout, with what GAE and the update need."""

    observation: Observation
    action: int
    logp_all: np.ndarray  # log π_old(· | input) over the legal actions
    value: float
    reward: float
    terminated: bool
    truncated: bool
    episode: int  # the stored episode id
    cut_value: float = 0.0  # truncated episodes: the value of the state the time limit cut it at


def collect_rollouts(policy: RlPolicy, envs: Sequence[TextEnv], store: ExperienceStore, decisions: int,
                     seed: int, minutes: float = float("inf"), stop: Callable[[], bool] = lambda: False
                     ) -> list[Step]:
    """Plays `policy` (sampling) in `envs` in lockstep, restarting ended games until `decisions` were made,
    `minutes` have passed or `stop()` says so, then finishing the open episodes; records every decision and episode in
    the store (one transaction per step); returns the steps in play order."""
    deadline = time.monotonic() + 60 * minutes
    seeds = np.random.default_rng(seed)
    games = [Game(env) for env in envs]

    def restart(batch: list[Game]) -> list[EpisodeStart]:
        return [game.restart(int(s), policy) for game, s in zip(batch, training_seeds(seeds, len(batch)), strict=True)]

    for game, episode_id in zip(games, store.start_episodes(restart(games)), strict=True):
        game.episode_id = episode_id
    live, steps = list(games), []
    while live:
        observations = [g.env.observe() for g in live]
        records, endings, ended = [], [], []
        for game, obs, (probs, value) in zip(live, observations, policy.evaluate(observations), strict=True):
            decision = policy.choose(probs)
            record, ending = step_and_record(game, obs, decision, policy)
            records.append(record)
            steps.append(Step(obs, decision.action, np.log(probs), value, record.reward, record.terminated,
                              record.truncated, record.episode_id))
            if ending is not None:
                endings.append(ending)
                ended.append(game)
                if record.truncated and not record.terminated:
                    steps[-1].cut_value = policy.evaluate([game.env.observe()])[0][1]
        restarted = ended if len(steps) < decisions and time.monotonic() < deadline and not stop() else []
        # the step's decisions, the episodes it ended and those that replace them: one transaction
        for game, episode_id in zip(restarted, store.record_step(records, endings, restart(restarted)), strict=True):
            game.episode_id = episode_id
        if not restarted:
            live = [g for g in live if g not in ended]
    return steps


def gae(steps: Sequence[Step], gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Returns (advantages, value targets) per step: GAE(γ, λ) within each episode; a truncated episode bootstraps
    from the value of the observation it was cut at."""
    by_episode: dict[int, list[int]] = {}
    for i, s in enumerate(steps):
        by_episode.setdefault(s.episode, []).append(i)
    advantages = np.zeros(len(steps))
    for rows in by_episode.values():
        running, next_value = 0.0, steps[rows[-1]].cut_value
        for i in reversed(rows):
            s = steps[i]
            delta = s.reward + gamma * next_value - s.value
            running = delta + gamma * lam * running
            advantages[i] = running
            next_value = s.value
    return advantages, advantages + np.array([s.value for s in steps])


def model_advantages(model: EnvModel, policy: RlPolicy, steps: Sequence[Step], gamma: float
                     ) -> tuple[np.ndarray, dict[tuple, np.ndarray]]:
    """Returns the advantages the empirical model gives (per step, and per distinct input and legal action), each
    task's divided by the root mean square of its steps' (so Taxi's scale does not drown FrozenLake's)."""
    inputs = list({_key(s.observation): s.observation for s in steps}.values())
    keys = [_key(o) for o in inputs]
    tables = dict(zip(keys, model.advantages(keys, [p for p, _ in policy.evaluate(inputs)], gamma), strict=True))
    per_step = np.array([tables[_key(s.observation)][s.action] for s in steps])
    tasks = np.array([s.observation.task_id for s in steps])
    scale = {task: max(float(np.sqrt((per_step[tasks == task] ** 2).mean())), 1e-6) for task in np.unique(tasks)}
    return per_step / np.array([scale[t] for t in tasks]), {key: table / scale[key[2]] for key, table in tables.items()}


def normalise_per_task(steps: Sequence[Step], advantages: np.ndarray) -> np.ndarray:
    """Returns the advantages standardised within each task, so Taxi's scale does not drown FrozenLake's."""
    out = advantages.copy()
    tasks = np.array([s.observation.task_id for s in steps])
    for task in np.unique(tasks):
        mask = tasks == task
        out[mask] = (out[mask] - out[mask].mean()) / (out[mask].std() + 1e-8)
    return out


@dataclass
class GroupedRows:
    """The update's rows: one per distinct input (or per decision, ungrouped), with per legal action the number of
    decisions that took it and the sums of their positive and negative advantages; per row the sums of the value
    targets and of their squares, and log π_old of every action. One forward pass serves every action of an input."""

    batch: dict[str, torch.Tensor]
    count: torch.Tensor  # (G, A) decisions that took each action
    adv_pos: torch.Tensor  # (G, A) Σ of their positive advantages
    adv_neg: torch.Tensor  # (G, A) Σ of their negative advantages
    ret_sum: torch.Tensor  # (G,) Σ of the row's value targets
    ret_sq: torch.Tensor  # (G,) Σ of their squares
    old_logp: torch.Tensor  # (G, A) log π_old (0 past the row's legal actions)
    legal: torch.Tensor  # (G, A) bool: the row's legal actions
    advantage: torch.Tensor  # (G, A) each action's advantage in the row's input (AWR's Ā)
    modelled: torch.Tensor  # (G,) bool: the row's advantages are the model critic's (else from its decisions' GAE)
    teacher: torch.Tensor  # (G, A) the teacher's mean probabilities over the row's decisions (0 where not taught)
    taught: torch.Tensor  # (G,) bool: the teacher was asked at this row's input (`agent.kickstart`)

    def __len__(self) -> int:
        return len(self.ret_sum)

    @property
    def decisions(self) -> torch.Tensor:
        """Returns (G,) the decisions each row stands for."""
        return self.count.sum(-1)

    def to(self, device: torch.device) -> "GroupedRows":
        """Returns the rows with every tensor on `device`."""
        return GroupedRows(**{k: ({n: t.to(device) for n, t in v.items()} if isinstance(v, dict) else v.to(device))
                              for k, v in vars(self).items()})

    def subset(self, index: torch.Tensor) -> "GroupedRows":
        """Returns the rows at `index` (a 1-D tensor of row numbers)."""
        return GroupedRows(**{k: ({n: t[index.to(t.device)] for n, t in v.items()} if isinstance(v, dict)
                                  else v[index.to(v.device)]) for k, v in vars(self).items()})

    def fit_value_head(self, critic: "ValueHead", features: torch.Tensor, config: "RlConfig",
                       generator: torch.Generator) -> float:
        """Fits `critic` on (G, D) cached first-position features to the rows' value targets (each row weighs as many
        decisions as it stands for); returns the final mean squared error per decision."""
        optimizer = torch.optim.Adam(critic.parameters(), lr=config.value_lr)
        critic.train()
        for _ in range(config.value_epochs):
            for index in torch.randperm(len(self), generator=generator).to(features.device).split(config.batch_size):
                loss = self.value_loss(critic(features[index]), index)
                optimizer.zero_grad(set_to_none=True)
                (loss / float(self.decisions[index].sum())).backward()
                optimizer.step()
        critic.eval()
        with torch.no_grad():
            return float(self.value_loss(critic(features), slice(None)) / self.decisions.sum())

    def value_loss(self, values: torch.Tensor, index) -> torch.Tensor:
        """Returns Σ over the decisions of the rows at `index` of (V(s) − R)², from (G,) values."""
        return (self.decisions[index] * values ** 2 - 2 * values * self.ret_sum[index] + self.ret_sq[index]).sum()


def group_rows(steps: Sequence[Step], advantages: np.ndarray, returns: np.ndarray, encoder: StudentEncoder,
               grouped: bool = True, action_advantages: dict[tuple, np.ndarray] | None = None,
               shrink: float = 2.0, teacher: Sequence[np.ndarray | None] | None = None) -> GroupedRows:
    """Returns the update's rows: one per distinct input with `grouped`, one per decision otherwise.

    Each row's per-action advantage is `action_advantages[input]` where it has the input (a critic that knows every
    action's value); otherwise the mean advantage of the decisions that took the action, shrunk by n / (n + shrink)
    (0 for actions not taken). Not centred on the input's mean: GAE's advantages already have the value head as their
    baseline, and where inputs are seen once (BabyAI) centring left every row at 0 — a round's target moved the
    policy by a KL of 0.002.

    `teacher` (per step, None where not asked) gives each row the mean of its decisions' teacher probabilities."""
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(steps):
        groups.setdefault(_key(s.observation) if grouped else (i,), []).append(i)
    members = list(groups.values())
    firsts = [steps[m[0]] for m in members]
    width = max(len(s.observation.legal_actions) for s in firsts)
    count, adv_pos, adv_neg, old_logp = (np.zeros((len(members), width)) for _ in range(4))
    legal = np.zeros((len(members), width), dtype=bool)
    taught_probs, taught = np.zeros((len(members), width)), np.zeros(len(members), dtype=bool)
    for row, m in enumerate(members):
        asked = [teacher[i] for i in m if teacher is not None and teacher[i] is not None]
        if asked:
            taught[row] = True
            taught_probs[row, :len(asked[0])] = np.mean(asked, axis=0)
        for i in m:
            a = steps[i].action
            count[row, a] += 1
            adv_pos[row, a] += max(advantages[i], 0.0)
            adv_neg[row, a] += min(advantages[i], 0.0)
        n = len(firsts[row].observation.legal_actions)
        old_logp[row, :n] = firsts[row].logp_all
        legal[row, :n] = True
    ret = [returns[m] for m in members]
    total = adv_pos + adv_neg
    advantage = total / (count + shrink)  # the mean over the n decisions, times n / (n + shrink)
    tables = action_advantages or {}
    modelled = np.array([_key(first.observation) in tables for first in firsts], dtype=bool)
    for row in modelled.nonzero()[0]:
        table = tables[_key(firsts[row].observation)]
        advantage[row] = 0.0
        advantage[row, :len(table)] = table

    def tensor(values) -> torch.Tensor:
        return torch.tensor(np.asarray(values, dtype=np.float64), dtype=torch.float32)

    return GroupedRows(batch=encoder.encode([_key(s.observation) for s in firsts]), count=tensor(count),
                       adv_pos=tensor(adv_pos), adv_neg=tensor(adv_neg), ret_sum=tensor([r.sum() for r in ret]),
                       ret_sq=tensor([(r ** 2).sum() for r in ret]), old_logp=tensor(old_logp),
                       legal=torch.from_numpy(legal), advantage=tensor(advantage),
                       modelled=torch.from_numpy(modelled), teacher=tensor(taught_probs),
                       taught=torch.from_numpy(taught))



def forward_rows(model: Hrm, batch: dict[str, torch.Tensor], index: torch.Tensor,
                 precision: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (log π, first-position state) of the rows at `index`, as the acting policy halts, the forward pass
    autocast to `precision` (`hrm.device.resolve_precision`; log π is fp32 either way)."""
    device = next(model.parameters()).device
    with autocast(device, resolve_precision(precision, device)):
        return acting_log_probs(model, {k: v[index].to(device) for k, v in batch.items()})


def features_of(model: Hrm, rows: "GroupedRows", batch_size: int,
                precision: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Returns ((G, A) log π, (G, D) first-position states) of every row, without gradient."""
    device = next(model.parameters()).device
    logp = torch.empty(len(rows), rows.batch["candidates"].shape[1], device=device)
    features = torch.empty(len(rows), model.config.hidden_size, device=device)
    with torch.no_grad():
        for index in by_length(rows.batch, batch_size):
            logp[index], state = forward_rows(model.eval(), rows.batch, index, precision)
            features[index] = state.float()
    return logp, features
