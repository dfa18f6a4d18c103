"""Comparing decisions read back from a store with the ones written (probs are stored as float32)."""

from collections.abc import Iterable

import pytest

from data.store import DecisionRecord


def assert_same_decisions(got: Iterable[DecisionRecord], expected: Iterable[DecisionRecord]) -> None:
    """Asserts equal decisions in the same order: every field equal, probs within 1e-6."""
    got, expected = list(got), list(expected)
    assert len(got) == len(expected)
    for read, written in zip(got, expected, strict=True):
        assert {**read.__dict__, "probs": None} == {**written.__dict__, "probs": None}
        assert read.probs == pytest.approx(written.probs, abs=1e-6)
