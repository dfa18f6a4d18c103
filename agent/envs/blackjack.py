"""Blackjack as text (a sentence), with its exact optimal Q computed from the infinite-deck rules.

Gymnasium hides Blackjack's model (there is no `P`), but the rules are simple enough to solve exactly: cards are
drawn with replacement (1-9 with probability 1/13 each, 10 with 4/13), the dealer draws to 17 or more (standing on
soft 17), and with `sab=True` (the registered default) a player's natural beats any dealer hand but a natural.
"""

import functools

import gymnasium
import numpy as np

from agent.envs.base import TextEnv

_DRAWS = [(card, 1 / 13) for card in range(1, 10)] + [(10, 4 / 13)]  # (card value, probability) of one draw
_BUST = 5  # index of "bust" in the dealer's final-score distribution (0..4 are totals 17..21)


def _total(hard: int, ace: bool) -> int:
    """Return the hand's total, counting one ace as 11 when that does not bust."""
    return hard + 10 if ace and hard + 10 <= 21 else hard


@functools.cache
def _dealer_final(hard: int, ace: bool) -> np.ndarray:
    """Return the distribution of the dealer's final total (17..21, bust) from a hand (hard total, holds an ace)."""
    total, out = _total(hard, ace), np.zeros(6)
    if total > 21:
        out[_BUST] = 1.0
    elif total >= 17:
        out[total - 17] = 1.0
    else:
        for card, p in _DRAWS:
            out += p * _dealer_final(hard + card, ace or card == 1)
    return out


def _stick_value(total: int, dealer_card: int) -> float:
    """Return the expected reward of sticking on `total` (≤ 21) against the dealer's face-up card."""
    final = sum(p * _dealer_final(dealer_card + hole, 1 in (dealer_card, hole)) for hole, p in _DRAWS)
    return float(final[_BUST] + final[:_BUST] @ np.sign(total - np.arange(17, 22)))


@functools.cache
def _q(hard: int, ace: bool, dealer_card: int) -> tuple[float, float]:
    """Return the optimal (stick, hit) values of a non-bust player hand against the dealer's face-up card."""
    hit = 0.0
    for card, p in _DRAWS:
        next_hard, next_ace = hard + card, ace or card == 1
        hit += p * (-1.0 if _total(next_hard, next_ace) > 21 else max(_q(next_hard, next_ace, dealer_card)))
    return _stick_value(_total(hard, ace), dealer_card), hit


@functools.cache
def _optimal_return() -> float:
    """Return the optimal expected reward of a hand, over the player's two cards and the dealer's face-up card."""
    expected = 0.0
    for first, p1 in _DRAWS:
        for second, p2 in _DRAWS:
            for dealer, p3 in _DRAWS:
                if {first, second} == {1, 10}:  # a natural: sticking wins unless the dealer has one too
                    value = 1.0 - {1: 4 / 13, 10: 1 / 13}.get(dealer, 0.0)
                else:
                    value = max(_q(first + second, 1 in (first, second), dealer))
                expected += p1 * p2 * p3 * value
    return expected


class Blackjack(TextEnv):
    """Blackjack-v1 (Sutton & Barto rules): +1 win, 0 draw, -1 loss; the observation is (sum, dealer card, ace)."""

    action_names = ["stick", "hit"]
    text_is_state = True  # the player's sum, the dealer's card and the usable ace
    description = (
        "Play blackjack against the dealer: hit to draw a card or stick to stop, "
        "aiming for a total closer to 21 than the dealer's without going over 21."
    )

    def __init__(self, name: str, task_id: int, env: gymnasium.Env):
        if not env.unwrapped.sab:
            raise ValueError(f"{name}: only sab=True (Sutton & Barto rules, the registered default) is supported")
        super().__init__(name, task_id, env)

    def render_text(self, state: tuple[int, int, int]) -> str:
        """Return a sentence with the player's total, whether they hold a usable ace, and the dealer's card."""
        total, dealer, usable_ace = state
        hand = "bust" if total > 21 else ("with a usable ace" if usable_ace else "no usable ace")
        card = {1: "an ace", 8: "an 8"}.get(dealer, f"a {dealer}")
        return f"Your cards total {total}, {hand}. The dealer shows {card}."

    def success(self, episode_return: float, terminated: bool) -> bool:
        """Return whether the hand was won."""
        return episode_return > 0

    def optimal_q(self, state: tuple[int, int, int]) -> np.ndarray:
        """Return the exact (stick, hit) values of an observation; zeros once bust (the episode is over).

        A soft 21 gets the value of a drawn-to 21: the observation cannot tell a natural apart.
        """
        total, dealer, usable_ace = state
        if total > 21:
            return np.zeros(2)
        return np.array(_q(total - 10 if usable_ace else total, bool(usable_ace), dealer))

    def optimal_return(self) -> float:
        """Return the exact optimal expected reward of one hand (the natural rule included)."""
        return _optimal_return()
