"""RL for the HRM: log π is the acting policy's, rollouts are memoised without changing a decision, grouped rows give
the ungrouped loss and gradient, the value head fits returns, the AWR target moves mass to better actions and keeps
exploring, and both updates (AWR, the default, and PPO) learn a small text env from a near-uniform start."""

import dataclasses

import gymnasium
import numpy as np
import pytest
import torch

from agent.awr import awr_targets, awr_update
from agent.env_model import EnvModel
from agent.envs import TextEnv, make_env
from agent.hrm_policy import HrmPolicy
from agent.kickstart import Demonstrations
from agent.ppo import ppo_loss, ppo_update
from agent.rl import (
    RlConfig,
    RlPolicy,
    ValueHead,
    collect_rollouts,
    forward_rows,
    gae,
    group_rows,
    model_advantages,
    normalise_per_task,
)
from agent.student import acting_log_probs
from data.store import ExperienceStore
from hrm import Hrm, HrmConfig


def small_student(seed: int = 0, halting: bool = True, preset: str = "agent-29m") -> Hrm:
    torch.manual_seed(seed)
    config = HrmConfig.preset(preset, hidden_size=32, num_heads=2, task_emb_dim=32, H_layers=1, L_layers=1,
                              halt_max_steps=4 if halting else 1)
    model = Hrm(config)
    if halting:
        with torch.no_grad():  # a Q head that halts different rows at different segments
            model.q_head.weight.normal_(0.0, 2.0)
            model.q_head.bias.zero_()
    return model.eval()


def taxi_observations(n: int) -> list:
    out = []
    for seed in range(n):
        env = make_env("Taxi-v4")
        env.reset(seed=seed)
        out.append(env.observe())
    return out


@pytest.mark.parametrize("precision, preset", [("none", "agent-29m"), ("bf16", "agent-29m"),
                                               ("none", "agent-29m-long")])
def test_log_probs_are_those_of_the_acting_policy_with_adaptive_halting(precision, preset):
    """RL's forward pass (`forward_rows`, as rollouts and updates run it) is the acting policy's, in either precision
    (bf16 is what "auto" runs on a CPU with AMX or AVX512-BF16), with either answer head (the long preset copies)."""
    model = small_student(seed=1, preset=preset)
    policy = HrmPolicy(model, precision=precision)
    observations = taxi_observations(12)
    acting = torch.log_softmax(policy.action_scores(observations), -1)
    assert len(set(policy.last_steps)) > 1  # rows halted at different segments
    batch = policy.batch(observations)
    with torch.no_grad():
        learning, _ = forward_rows(model, batch, torch.arange(len(observations)), precision)
    tolerance = 1e-5 if precision == "none" else 2e-2
    torch.testing.assert_close(learning, acting, atol=tolerance, rtol=tolerance)


def test_memoised_rollouts_make_the_same_decisions_and_evaluate_each_input_once(tmp_path):
    model, head = small_student(), ValueHead(32)
    played = {}
    for memoise in (True, False):
        store = ExperienceStore(tmp_path / f"{memoise}.db")
        policy = RlPolicy(model, head, version=None, seed=3, memoise=memoise)
        envs = [make_env("FrozenLake-v1") for _ in range(4)]
        steps = collect_rollouts(policy, envs, store, 200, seed=5)
        stored = [d.chosen for d in store.decisions()]
        played[memoise] = ([s.action for s in steps], stored, policy.evaluations)
        assert len(stored) == len(steps) >= 200
        assert all(e.ended_at is not None for e in store.episodes(finished=None))  # no episode left open
    assert played[True][:2] == played[False][:2]
    assert played[True][2] <= 16 < played[False][2]  # FrozenLake 4×4 has 16 cells


def test_rollouts_start_no_episode_once_their_minutes_are_spent():
    policy = RlPolicy(small_student(), ValueHead(32), seed=0)
    store = ExperienceStore("sqlite://")
    steps = collect_rollouts(policy, [make_env("FrozenLake-v1") for _ in range(4)], store, 10_000, seed=0, minutes=0)
    episodes = store.episodes(finished=None)
    assert len({s.episode for s in steps}) == len(episodes) == 4  # the four first episodes, played to their end
    assert len(steps) < 10_000 and all(e.ended_at is not None for e in episodes)


def _rows_and_refs(grouped: bool):
    model = small_student(halting=False)
    head = ValueHead(32)
    torch.nn.init.normal_(head.net[-1].weight, std=1.0)  # values that differ by state: advantages of both signs
    policy = RlPolicy(model, head, seed=0)
    steps = collect_rollouts(policy, [make_env("Taxi-v4") for _ in range(4)], ExperienceStore("sqlite://"), 120,
                             seed=0)
    advantages, returns = gae(steps, 0.99, 0.95)
    advantages = (advantages - advantages.mean()) / advantages.std()
    return model, head, group_rows(steps, advantages, returns, policy.encoder, grouped=grouped)


def test_rows_take_the_models_advantages_where_it_knows_the_input_and_their_decisions_elsewhere():
    # the "auto" critic: one round holds rows of modelled envs (the model's table per input) and of partial views
    policy = RlPolicy(small_student(halting=False), ValueHead(32), seed=0)
    steps = collect_rollouts(policy, [make_env("Taxi-v4") for _ in range(4)], ExperienceStore("sqlite://"), 120,
                             seed=0)
    advantages, returns = torch.linspace(-1, 1, len(steps)).double().numpy(), torch.zeros(len(steps)).numpy()
    first = steps[0].observation
    table = {(first.text, first.legal_actions, first.task_id): torch.arange(6.0).double().numpy()}
    mixed = group_rows(steps, advantages, returns, policy.encoder, action_advantages=table)
    plain = group_rows(steps, advantages, returns, policy.encoder)
    assert mixed.modelled.tolist() == [True] + [False] * (len(mixed) - 1) and not plain.modelled.any()
    assert mixed.advantage[0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert torch.equal(mixed.advantage[1:], plain.advantage[1:])


def test_grouped_rows_give_the_ungrouped_loss_and_gradient():
    results = {}
    for grouped in (True, False):
        model, head, rows = _rows_and_refs(grouped)
        model.train()
        with torch.no_grad():  # the policy has moved away from π_old, so the clip is active for some rows
            for p in model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
        index = torch.arange(len(rows))
        logp, state = acting_log_probs(model, rows.batch)
        ref = logp.detach() + 0.1
        loss, terms = ppo_loss(logp, head(state), ref, rows, index, RlConfig(), kl_coef=0.05)
        model.zero_grad()
        loss.backward()
        results[grouped] = (loss.detach(), model.lm_head.weight.grad.clone(), len(rows))
    assert results[True][2] < results[False][2]  # a wandering taxi revisits states: fewer rows
    torch.testing.assert_close(results[True][0], results[False][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(results[True][1], results[False][1], rtol=1e-5, atol=1e-5)


def test_the_value_head_fits_returns_on_a_fixed_set():
    torch.manual_seed(0)
    features = torch.randn(64, 32)
    returns = features[:, :4].sum(-1).tanh() * 5 - 2  # a smooth function of the state, on a return-like scale
    head = ValueHead(32)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    with torch.no_grad():
        before = float(((head(features) - returns) ** 2).mean())
    for _ in range(400):
        loss = ((head(features) - returns) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.02 * before


class Corridor(gymnasium.Env):
    """Five cells in a row; start at the left end, reward 1 on reaching the right end, at most 12 steps."""

    action_space = gymnasium.spaces.Discrete(2)
    observation_space = gymnasium.spaces.Discrete(5)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.position = 0
        return self.position, {}

    def step(self, action):
        self.position = max(0, self.position + (1 if action == 1 else -1))
        done = self.position == 4
        return self.position, float(done), done, False, {}


class CorridorText(TextEnv):
    action_names = ["west", "east"]
    description = "Walk to the east end of the corridor."

    def render_text(self, state) -> str:
        return f"You are in cell {state} of a corridor of 5 cells; the exit is at cell 4."

    def success(self, episode_return: float, terminated: bool) -> bool:
        return terminated


def corridor() -> TextEnv:
    return CorridorText("Corridor", 5, gymnasium.wrappers.TimeLimit(Corridor(), 12))


def greedy_return(policy: RlPolicy) -> float:
    env = corridor()
    env.reset(seed=0)
    total, done = 0.0, False
    while not done:
        [decision] = policy.decide([env.observe()], greedy=True)
        _, reward, terminated, truncated, _ = env.step(decision.action)
        total, done = total + reward, terminated or truncated
    return total


def learn_corridor(tmp_path, update, critic: str) -> None:
    """Runs 12 rounds of `update(model, head, rows, round_index) -> (model, head)` from a near-uniform start, with
    advantages from `critic` ("gae" or "model"), and asserts the corridor is learnt: greedy play reaches the exit,
    sampled play ≥ 0.9 of the optimum."""
    model, head = small_student(seed=1, halting=False), ValueHead(32)
    store = ExperienceStore(tmp_path / "rl.db")
    env_model = EnvModel(["Corridor"])
    first = RlPolicy(model, head)
    start_probs = [p for p, _ in first.evaluate([_at(cell) for cell in range(4)])]
    assert all(0.3 < p[1] < 0.7 for p in start_probs)  # near uniform in every cell
    assert greedy_return(first) == 0.0  # greedily it walks west: the start fails
    rollout_returns = []
    for round_index in range(12):
        policy = RlPolicy(model, head, seed=round_index)
        steps = collect_rollouts(policy, [corridor() for _ in range(8)], store, 256, seed=round_index)
        rollout_returns.append(sum(s.reward for s in steps) / len({s.episode for s in steps}))
        advantages, returns = gae(steps, 0.9, 0.95)
        if critic == "model":
            env_model.refresh(store)
            advantages, tables = model_advantages(env_model, policy, steps, 0.9)
            rows = group_rows(steps, advantages, returns, policy.encoder, action_advantages=tables)
        else:
            rows = group_rows(steps, normalise_per_task(steps, advantages), returns, policy.encoder)
        model, head = update(model, head, rows, round_index)
    final = RlPolicy(model, head)
    east = [p[1] for p, _ in final.evaluate([_at(cell) for cell in range(4)])]
    assert greedy_return(final) == 1.0  # the optimum
    assert min(east) > 0.75 > max(p[1] for p in start_probs)
    assert rollout_returns[-1] > 0.9 > rollout_returns[0]  # sampled play: ≥ 0.9 of the optimum


def test_ppo_learns_a_corridor_from_a_near_uniform_start(tmp_path):
    config = RlConfig(update="ppo", ppo_lr=1e-3, value_lr=3e-3, ppo_kl=0.0, ppo_epochs=4, value_epochs=10,
                      ppo_target_kl=0.5)

    def update(model, head, rows, round_index):
        model, head, _ = ppo_update(model, head, model, rows, config, round_index)
        return model, head

    learn_corridor(tmp_path, update, critic="gae")


def test_awr_learns_a_corridor_from_a_near_uniform_start(tmp_path):
    config = RlConfig(fit_lr=1e-3, fit_steps=24, value_lr=3e-3, value_epochs=10, floor=0.05)
    state = {"optimizer": None}

    def update(model, head, rows, round_index):
        model, head, _, state["optimizer"] = awr_update(model, head, rows, config, round_index, state["optimizer"])
        return model, head

    learn_corridor(tmp_path, update, critic="model")


def test_the_awr_target_favours_better_actions_and_keeps_every_action_tried():
    model, head, rows = _rows_and_refs(grouped=True)
    rows = dataclasses.replace(rows, modelled=torch.ones(len(rows), dtype=torch.bool))  # the floor's rows
    target = awr_targets(rows, beta=0.5, floor=0.1)
    probs, old = target.exp(), rows.old_logp.exp() * rows.legal
    assert torch.allclose(probs.sum(-1), torch.ones(len(rows)), atol=1e-5)
    assert (probs[~rows.legal] == 0).all()
    assert (probs[rows.legal] >= 0.1 / 6 / 1.1 - 1e-6).all()  # the floor: every legal action keeps being sampled
    for g in range(len(rows)):  # within a state, the action with the best advantage gains on the worst
        taken = (rows.count[g] > 0).nonzero().squeeze(1)
        if len(taken) < 2:
            continue
        best, worst = taken[rows.advantage[g, taken].argmax()], taken[rows.advantage[g, taken].argmin()]
        if rows.advantage[g, best] > rows.advantage[g, worst]:
            assert probs[g, best] / probs[g, worst] > old[g, best] / old[g, worst]


def test_where_the_critic_knows_nothing_the_awr_target_leaves_the_policy_as_it_is():
    # the floor bounds each action from below; it does not pull a policy that respects it towards uniform, round after
    # round (the mixture it replaced took a BabyAI learner's entropy from 1.00 to 1.57 in four rejected rounds)
    # GAE's rows (partial views) get no floor at all: a distilled BabyAI student's ruled-out actions stay ruled out
    _, _, rows = _rows_and_refs(grouped=True)
    peaked = torch.tensor([0.80, 0.10, 0.04, 0.03, 0.02, 0.01])[: rows.legal.shape[1]]
    old = (peaked / peaked.sum()).log().expand(len(rows), -1) * rows.legal
    blank = dataclasses.replace(rows, old_logp=old, advantage=torch.zeros_like(rows.advantage),
                                modelled=torch.ones(len(rows), dtype=torch.bool))
    target = awr_targets(blank, beta=0.5, floor=0.06)  # 0.01 per action of six: below π_old everywhere
    assert torch.allclose(target.exp() * rows.legal, old.exp() * rows.legal, atol=1e-6)
    lowered = awr_targets(blank, beta=0.5, floor=0.2).exp()  # 0.033 per action: the rarest are lifted
    assert (lowered[:, 4:6] > peaked[4:6] * 1.5).all() and (lowered[:, 0] > 0.75).all()
    gae_rows = dataclasses.replace(blank, modelled=torch.zeros(len(rows), dtype=torch.bool))
    unfloored = awr_targets(gae_rows, beta=0.5, floor=0.2).exp()
    assert torch.allclose(unfloored * rows.legal, old.exp() * rows.legal, atol=1e-6)


def test_where_the_teacher_was_asked_it_gets_its_share_of_the_awr_target_and_nowhere_else():
    model, head, rows = _rows_and_refs(grouped=True)
    asked = torch.arange(len(rows)) % 2 == 0
    expert = torch.zeros_like(rows.teacher)
    expert[:, 2] = 1.0  # the teacher would go forward everywhere it was asked
    rows = dataclasses.replace(rows, teacher=expert * asked.unsqueeze(-1), taught=asked)
    alone = awr_targets(rows, beta=0.5, floor=0.0).exp()
    kicked = awr_targets(rows, beta=0.5, floor=0.0, kickstart=0.5).exp()
    assert torch.allclose(kicked[~asked], alone[~asked])
    assert torch.allclose(kicked[asked], 0.5 * alone[asked] + 0.5 * expert[asked], atol=1e-6)
    assert torch.allclose(kicked.sum(-1), torch.ones(len(rows)), atol=1e-5)
    only = awr_targets(rows, beta=0.5, floor=0.0, kickstart=1.0).exp()
    assert torch.equal(only[asked], expert[asked])  # all of it: the teacher's one-hot rules the other actions out
    _, _, metrics, _ = awr_update(model, head, rows, RlConfig(fit_steps=1, value_epochs=1, kickstart=1.0))
    assert all(np.isfinite(metrics[k]) for k in ("kl_target", "target_kl_old", "approx_kl"))
    assert metrics["taught_rows"] == pytest.approx(float(asked.float().mean()))


def test_the_teachers_own_decisions_are_fitted_beside_the_rows_when_it_has_a_share():
    model, head, rows = _rows_and_refs(grouped=True)
    expert = torch.zeros(len(rows), rows.legal.shape[1])
    expert[:, 2] = 1.0  # the teacher went forward in each of these inputs
    shown = Demonstrations(rows.batch, expert)
    config = RlConfig(fit_steps=4, fit_lr=1e-3, value_epochs=1, kickstart=1.0)

    def forward_share(fitted: Hrm) -> float:
        with torch.no_grad():
            return float(acting_log_probs(fitted.eval(), rows.batch)[0][:, 2].exp().mean())

    without, _, plain, _ = awr_update(model, head, rows, config)
    fitted, _, metrics, _ = awr_update(model, head, rows, config, demonstrations=shown)
    assert forward_share(fitted) > forward_share(without) + 0.05
    assert metrics["demonstrations"] == len(rows) and 0.0 <= metrics["demonstration_agreement"] <= 1.0
    assert "demonstrations" not in plain
    ignored, _, _, _ = awr_update(model, head, rows, dataclasses.replace(config, kickstart=0.0), demonstrations=shown)
    assert forward_share(ignored) == pytest.approx(forward_share(without))  # no share, no demonstrations


def test_a_rows_teacher_is_the_mean_of_what_it_said_at_the_rows_decisions():
    policy = RlPolicy(small_student(halting=False), ValueHead(32), seed=0)
    steps = collect_rollouts(policy, [make_env("FrozenLake-v1") for _ in range(2)], ExperienceStore("sqlite://"),
                             40, seed=0)
    first = steps[0].observation
    said = [np.eye(4)[i % 4] if s.observation == first else None for i, s in enumerate(steps)]
    rows = group_rows(steps, np.zeros(len(steps)), np.zeros(len(steps)), policy.encoder, teacher=said)
    assert rows.taught.tolist() == [True] + [False] * (len(rows) - 1)
    expected = np.mean([p for p in said if p is not None], axis=0)
    assert rows.teacher[0].tolist() == pytest.approx(expected.tolist()) and not rows.teacher[1:].any()


def _at(cell: int):
    env = corridor()
    env.reset(seed=0)
    env.state = cell
    return env.observe()
