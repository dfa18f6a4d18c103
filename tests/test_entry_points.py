"""Each entry point run as a user runs it: a subprocess from the project root."""

import subprocess
import sys

from tests.conftest import ROOT


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_train_hrm_dry_run_prints_parameters_and_loss():
    result = run("train_hrm.py", "--dry-run", "--batch-size", "2", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "agent-29m: 29,008,898 parameters" in result.stdout
    loss = float(result.stdout.split("loss ")[1].split()[0])
    assert 9.0 < loss < 13.0  # ≈ ln(50,257) = 10.8 for an untrained model


def test_train_hrm_bad_flag_value_is_one_line_and_exit_2():
    result = run("train_hrm.py", "--batch-size", "lots")
    assert result.returncode == 2
    assert "invalid int value: 'lots'" in result.stderr
    assert "Traceback" not in result.stderr
