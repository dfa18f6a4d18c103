"""`python -m hrm.pretrain`: key=value settings, a run end to end, exact resume, and torchrun matching one process."""

import json
import os
import subprocess
import sys

import pytest
import torch

from hrm import load_checkpoint
from hrm.pretrain import main, model_config, parse_config, pretrain
from hrm.puzzles.dataset import load_metadata
from tests.conftest import ROOT

pytestmark = pytest.mark.usefixtures("one_thread")

# A tiny HRM (hidden 32, 1 + 1 layers, 2 L-cycles, up to 3 segments) on the 16-group dataset of conftest.py.
TINY = ["arch.hidden_size=32", "arch.num_heads=2", "arch.expansion=2", "arch.H_layers=1", "arch.L_layers=1",
        "arch.H_cycles=1", "arch.L_cycles=2", "arch.halt_max_steps=3", "global_batch_size=8", "lr=3e-3",
        "lr_warmup_steps=2", "log_every=1000"]
EVAL_KEYS = {"accuracy", "exact_accuracy", "q_halt_accuracy", "steps", "lm_loss", "q_halt_loss", "q_continue_loss"}


def run_module(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=env)


def test_settings_are_typed_and_arch_overrides_the_preset(sudoku_dir):
    config = parse_config([f"data_path={sudoku_dir}", "lr=3e-4", "epochs=7", "eval_interval=none", "wandb=false",
                           "mixed_precision=bf16", "arch.hidden_size=64", "arch.num_heads=4"])
    assert (config.lr, config.epochs, config.eval_interval, config.mixed_precision) == (3e-4, 7, None, "bf16")
    model = model_config(config, load_metadata(sudoku_dir / "train"))
    assert (model.hidden_size, model.num_heads, model.H_layers) == (64, 4, 4)  # the rest is sudoku-27m's
    assert (model.vocab_size, model.seq_len, model.num_tasks) == (11, 81, 1)  # from dataset.json
    assert model.task_emb_dim == 64  # follows hidden_size, as the seed's puzzle_emb_ndim


@pytest.mark.parametrize("args, message", [
    (["lr=fast"], "lr must be float, got 'fast'"),
    (["learning_rate=1e-3"], "unknown setting learning_rate"),
    (["arch.hiden_size=64"], "unknown setting arch.hiden_size; did you mean arch.hidden_size?"),
    (["arch.num_heads=7"], "hidden_size 512 is not divisible by num_heads 7"),
    (["arch.vocab_size=12"], "arch.vocab_size comes from the dataset"),
    (["mixed_precision=fp8"], "mixed_precision must be one of none, bf16, fp16"),
    (["epochs=0"], "epochs must be at least 1"),
    (["eval_interval=0"], "eval_interval must be at least 1"),
    (["global_batch_size=64", "epochs=1"], "do not fill one global batch"),
    (["lr"], "expected key=value, got 'lr'"),
    (["device=tpu"], "device=tpu:"),
])
def test_bad_settings_end_in_one_line_and_exit_2(sudoku_dir, tmp_path, capsys, args, message):
    code = main([f"data_path={sudoku_dir}", f"checkpoint_path={tmp_path}", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("python -m hrm.pretrain: error:") and message in err
    assert len(err.splitlines()) == 1


def test_missing_or_unreadable_dataset_is_one_line(tmp_path, capsys):
    assert main(["epochs=3"]) == 2
    assert "data_path=DIR is required" in capsys.readouterr().err
    assert main([f"data_path={tmp_path}"]) == 2
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "dataset.json").write_text("[1, 2")
    assert main([f"data_path={tmp_path}"]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_a_run_logs_eval_metrics_and_writes_a_resumable_checkpoint(sudoku_dir, tmp_path):
    """The entry point as a user runs it: training metrics fall, eval metrics are logged, the run folder is full."""
    run = tmp_path / "run"
    result = run_module("hrm.pretrain", f"data_path={sudoku_dir}", "epochs=20", "eval_interval=10",
                        f"checkpoint_path={run}", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval_accuracy" in r]
    assert [r["step"] for r in evals] == [20, 40] and [r["epoch"] for r in evals] == [10, 20]
    assert {f"eval_{k}" for k in EVAL_KEYS} <= set(evals[-1])
    assert {"lm_loss", "q_halt_loss", "q_continue_loss"} <= set(evals[-1])  # training's, at the same step
    # It learned: an untrained model gets ~1/11 of the cells; copying the 60 givens alone is worth 60/81.
    assert evals[-1]["eval_accuracy"] > 0.7

    state = load_checkpoint(run / "last.pt")
    assert state["step"] == 40 and state["data_cursor"] == {"step": 40, "epoch": 20.0}
    assert state["pretrain_config"]["epochs"] == 20 and state["model_config"]["hidden_size"] == 32
    assert (run / "source" / "model.py").read_text().startswith('"""The Hierarchical Reasoning Model')
    assert json.loads((run / "config.json").read_text())["model"]["halt_max_steps"] == 3


def test_resume_continues_exactly_where_the_run_stopped(sudoku_dir, tmp_path):
    common = [f"data_path={sudoku_dir}", "eval_interval=none", *TINY]
    straight, _ = pretrain(parse_config([*common, "epochs=6", f"checkpoint_path={tmp_path / 'a'}"]))
    first, _ = pretrain(parse_config([*common, "epochs=3", f"checkpoint_path={tmp_path / 'b'}"]))
    assert first.step == 6
    torch.manual_seed(1234)  # the resumed run must not depend on the loading process's RNG
    resumed, metrics = pretrain(parse_config([f"resume={tmp_path / 'b' / 'last.pt'}", "epochs=6"]))
    assert resumed.step == 12 and metrics["step"] == 12
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(straight.carry.z_H, resumed.carry.z_H)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["data_cursor"]["epoch"] == 6.0  # same run folder


def test_resume_refuses_to_change_the_data_or_the_model(sudoku_dir, tmp_path, capsys):
    pretrain(parse_config([f"data_path={sudoku_dir}", "epochs=1", "eval_interval=none",
                           f"checkpoint_path={tmp_path}", *TINY]))
    assert main([f"resume={tmp_path / 'last.pt'}", "global_batch_size=16", "arch.hidden_size=64"]) == 2
    assert "keeps its global_batch_size, arch.hidden_size" in capsys.readouterr().err
    assert main([f"resume={tmp_path / 'missing.pt'}"]) == 2
    assert "missing.pt does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_two_ranks_under_torchrun_match_one_process_with_the_same_global_batch(sudoku_dir, tmp_path):
    args = [f"data_path={sudoku_dir}", "epochs=2", "eval_interval=1", *TINY, "arch.halt_exploration_prob=0"]
    cmd = ["torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(ROOT / "tests" / "hrm" / "pretrain_worker.py"), str(tmp_path), *args,
           f"checkpoint_path={tmp_path / 'ddp'}"]
    result = run_module(*cmd)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))

    single, metrics = pretrain(parse_config([*args, f"checkpoint_path={tmp_path / 'single'}"]))
    for name, p in single.model.named_parameters():
        assert torch.equal(rank0["params"][name], rank1["params"][name]), f"ranks differ on {name}"
        torch.testing.assert_close(rank0["params"][name], p.detach(), rtol=1e-4, atol=1e-5, msg=name)
    for key in ("lm_loss", "eval_accuracy", "eval_lm_loss", "eval_q_halt_loss"):  # metrics reduced over ranks
        assert rank0["metrics"][key] == pytest.approx(metrics[key], rel=1e-4), key
    assert rank0["metrics"] == pytest.approx(rank1["metrics"], nan_ok=True)
    assert (tmp_path / "ddp" / "last.pt").is_file() and len(list((tmp_path / "ddp").glob("*.pt"))) == 1
