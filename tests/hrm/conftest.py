"""Fixtures of the hrm tests: a tiny Sudoku dataset built once per session."""

import pytest
import torch

from hrm.puzzles.build import BuildArgs, build

TINY_SUDOKU = dict(train_puzzles=16, test_puzzles=16, num_aug=7, givens=60, seed=0)


@pytest.fixture(scope="session")
def sudoku_dir(tmp_path_factory):
    """Returns a dataset folder: 16 training puzzles × 8 copies, 16 test puzzles, 60 givens each."""
    out = tmp_path_factory.mktemp("sudoku")
    build(BuildArgs(output_dir=str(out), **TINY_SUDOKU))
    return out


@pytest.fixture
def one_thread():
    """Runs a test on one intra-op thread: tiny models are overhead-bound, and on a busy 2-core machine two
    threads spinning at every op's barrier make a step ~30× slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
