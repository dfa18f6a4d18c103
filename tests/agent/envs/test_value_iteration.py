import numpy as np
import pytest

from agent.envs import make_env
from agent.envs.value_iteration import TabularModel, solve

# State 0: "go" pays -1 and moves to state 1, "quit" pays -5 and ends; state 1: "go" pays +3 and ends, "quit" 0.
CHAIN = {
    0: {0: [(1.0, 1, -1.0, False)], 1: [(1.0, 0, -5.0, True)]},
    1: {0: [(0.5, 1, 3.0, True), (0.5, 1, 3.0, True)], 1: [(1.0, 1, 0.0, True)]},
}


def test_model_pads_outcomes_with_zero_probability():
    model = TabularModel.from_gymnasium(CHAIN)
    assert model.probs.shape == (2, 2, 2)
    assert model.probs[0, 0].tolist() == [1.0, 0.0]
    assert model.terminated[0, 1, 0] and not model.terminated[0, 0, 0]


def test_solve_backs_up_exactly_horizon_steps():
    model, start = TabularModel.from_gymnasium(CHAIN), np.array([1.0, 0.0])
    converged = solve(model, start, horizon=None)
    np.testing.assert_allclose(converged.q, [[2.0, -5.0], [3.0, 0.0]])
    assert converged.optimal_return == 2.0
    one_step = solve(model, start, horizon=1)  # no time to collect the +3: quitting now costs less than going on
    np.testing.assert_allclose(one_step.q, [[-1.0, -5.0], [3.0, 0.0]])
    assert one_step.optimal_return == -1.0


def test_step_limit_is_part_of_the_optimum():
    # With no step limit, undiscounted FrozenLake can dither safely forever: 14/17 success instead of 0.744.
    env = make_env("FrozenLake-v1")
    model, start = TabularModel.from_gymnasium(env.env.unwrapped.P), env.env.unwrapped.initial_state_distrib
    assert solve(model, start, horizon=None).optimal_return == pytest.approx(14 / 17, abs=1e-9)
    assert solve(model, start, horizon=100).optimal_return == pytest.approx(env.optimal_return())


def test_divergent_values_raise():
    forever = {0: {0: [(1.0, 0, 1.0, False)]}}  # +1 a step, never ends
    with pytest.raises(RuntimeError, match="did not converge"):
        solve(TabularModel.from_gymnasium(forever), np.ones(1), horizon=None, max_sweeps=50)


def test_solutions_are_cached_per_env_name():
    assert make_env("Taxi-v4").solution() is make_env("Taxi-v4").solution()
