"""Policy-gradient fine-tuning: log π is the policy that acted, and an update favours what paid off."""

import torch

from agent.envs import make_env
from agent.hrm_policy import HrmPolicy
from agent.rl import RlConfig, policy_log_probs, reinforce
from agent.runner import observe
from data.store import DecisionRecord
from hrm import Hrm, HrmConfig


def small_student(seed: int = 0) -> Hrm:
    torch.manual_seed(seed)
    config = HrmConfig.preset("agent-29m", hidden_size=32, num_heads=2, task_emb_dim=32, H_layers=1, L_layers=1,
                              halt_max_steps=4)
    model = Hrm(config)
    with torch.no_grad():  # a Q head that halts different rows at different segments
        model.q_head.weight.normal_(0.0, 2.0)
        model.q_head.bias.zero_()
    return model.eval()


def taxi_observations(n: int) -> list:
    out = []
    for seed in range(n):
        env = make_env("Taxi-v4")
        env.reset(seed=seed)
        out.append(observe(env))
    return out


def test_log_probs_are_those_of_the_acting_policy_with_adaptive_halting():
    model = small_student()
    policy = HrmPolicy(model)
    observations = taxi_observations(12)
    acting = torch.log_softmax(policy.action_scores(observations), -1)
    assert len(set(policy.last_steps)) > 1  # rows halted at different segments
    with torch.no_grad():
        learning = policy_log_probs(model, policy.batch(observations))
    torch.testing.assert_close(learning, acting, atol=1e-5, rtol=1e-5)


def test_an_update_raises_the_probability_of_the_action_that_paid_off():
    model = small_student()
    policy = HrmPolicy(model)
    [observation] = taxi_observations(1)
    good, bad = 3, 0

    def decision(episode: int, action: int, reward: float) -> DecisionRecord:
        return DecisionRecord(episode, 0, "Taxi-v4", observation.task_id, "0", observation.text, "",
                              observation.legal_actions, action, (1 / 6,) * 6, "hrm", None, reward, True, False)

    decisions = [decision(i, good if i % 2 else bad, 1.0 if i % 2 else -1.0) for i in range(32)]
    before = torch.softmax(policy.action_scores([observation]), -1)[0]
    improved, metrics = reinforce(model, decisions, RlConfig(lr=1e-3, epochs=3, batch_size=8, kl=0.0))
    after = torch.softmax(HrmPolicy(improved).action_scores([observation]), -1)[0]
    assert after[good] > before[good] + 0.1 and after[bad] < before[bad]
    assert metrics["decisions"] == 32 and metrics["updates"] == 12
    assert torch.equal(torch.softmax(policy.action_scores([observation]), -1)[0], before)  # the champion is untouched
    _, sampled = reinforce(model, decisions, RlConfig(epochs=1, batch_size=8, max_decisions=8))
    assert sampled["decisions"] == 8 and sampled["updates"] == 1  # a long round trains on a bounded sample
