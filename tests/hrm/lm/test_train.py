"""`python -m hrm.lm.train`: the seed's flags, YAML, one-line errors, bit-for-bit resume, and learning addition."""

import os
import subprocess
import sys

import pytest
import torch
from rich.console import Console

from hrm import load_checkpoint
from hrm.cli import ConfigError
from hrm.lm.train import TrainArgs, main, parse_train_args, train
from tests.conftest import ROOT
from tests.hrm.lm.conftest import TINY

pytestmark = pytest.mark.usefixtures("one_thread")


def run_module(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=env)


def test_seed_flags_in_both_spellings_and_yaml(tmp_path):
    args = parse_train_args(["--dry_run", "1", "--dataset", "synthetic", "--steps", "7", "--val_every", "3",
                             "--save_dir", "x", "--mixed_precision", "bf16", "--grad_clip", "0.5"])
    assert (args.dry_run, args.steps, args.val_every, args.save_dir, args.mixed_precision, args.grad_clip) == (
        1, 7, 3, "x", "bf16", 0.5)
    assert parse_train_args(["--dry-run", "--val-every=4"]).val_every == 4
    config = tmp_path / "lm.yaml"
    config.write_text("steps: 9\nval_every: 2\nlr: 3e-3\nbypass-hrm: true\nmixed_precision: fp16\n")
    args = parse_train_args(["--config", str(config), "--steps", "11"])
    assert (args.steps, args.val_every, args.lr, args.bypass_hrm, args.mixed_precision) == (11, 2, 3e-3, True, "fp16")
    config.write_text("stepz: 9\n")
    with pytest.raises(ConfigError, match="unknown setting stepz; did you mean steps"):
        parse_train_args(["--config", str(config)])


def test_dry_run_prints_parameters_and_a_loss():
    result = run_module("hrm.lm.train", "--dry_run", "1")
    assert result.returncode == 0, result.stderr
    assert "parameters (HRM encoder)" in result.stdout and "| loss " in result.stdout


def test_an_unknown_dataset_is_one_line_and_exit_2(capsys):
    assert main(["--dataset", "wikitext"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown dataset 'wikitext'" in err and "Traceback" not in err


def test_resume_continues_bit_for_bit(tmp_path):
    tiny = {**TINY, "heldout_size": 20, "ood_size": 5, "batch_size": 8, "steps": 6, "val_every": 3}
    quiet = Console(quiet=True)
    straight, _ = train(TrainArgs(**tiny, save_dir=str(tmp_path / "a")), quiet)
    train(TrainArgs(**tiny, save_dir=str(tmp_path / "b"), stop_at=3), quiet)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["step"] == 3
    resumed, _ = train(parse_train_args(["--resume", str(tmp_path / "b" / "last.pt")]), quiet)
    assert resumed.step == straight.step == 6
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(ConfigError, match="keeps its hidden_size"):
        parse_train_args(["--resume", str(tmp_path / "b" / "last.pt"), "--hidden_size", "32"])


@pytest.mark.slow
def test_a_tiny_hrm_learns_two_digit_addition(trained_lm):
    path, last = trained_lm
    print(f"tiny HRM × LM, {last['step']} steps: held-out exact {last['eval_exact_accuracy']:.3f}")
    assert last["eval_exact_accuracy"] >= 0.95, last
    assert last["eval_exact_d1"] >= 0.9 and last["eval_exact_d2"] >= 0.9
    state = load_checkpoint(path)
    assert state["tokenizer"]["kind"] == "char" and state["dataset"]["name"] == "synthetic"
    assert len(state["optimizers"]) == 1 and state["step"] == last["step"]
