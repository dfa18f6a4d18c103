"""Every range-checked flag of start_training.py and train_hrm.py refuses a value outside its range: one line naming
the flag and the range, exit 2, before anything runs."""

import dataclasses
import subprocess
import sys
import typing

import pytest

from aegis.distill import DistillArgs
from aegis.orchestrator import AgentConfig
from hrm.cli import Range, build_parser
from tests.conftest import ROOT


def outside(allowed: Range, kind) -> str:
    """Returns a value just outside `allowed` (below it, or above it when it has no lower bound)."""
    if allowed.low is not None:
        return str(kind(allowed.low) if allowed.open_low else (allowed.low - 1 if kind is int else allowed.low - 0.5))
    return str(allowed.high + 1)


def ranged_flags(cls) -> list[tuple[str, str]]:
    """Returns (flag, bad value) for every field of `cls` that declares a Range."""
    out = []
    for f in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls, include_extras=True)[f.name]
        if typing.get_origin(hint) is typing.Annotated:
            base, allowed = typing.get_args(hint)[:2]
            kind = next(a for a in typing.get_args(base) or (base,) if a is not type(None))
            out.append(("--" + f.name.replace("_", "-"), outside(allowed, kind)))
    return out


@pytest.mark.parametrize("cls", [AgentConfig, DistillArgs])
def test_every_ranged_flag_refuses_a_value_outside_its_range_in_one_line(cls, capsys):
    flags = ranged_flags(cls)
    assert len(flags) >= 12
    for flag, bad in flags:
        with pytest.raises(SystemExit) as exit_info:
            build_parser(cls, prog="x").parse_args([flag, bad])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and flag in err and "must be" in err, (flag, bad, err)
        field = flag[2:].replace("-", "_")
        default = getattr(cls, field)
        with pytest.raises(ValueError, match=flag):  # built in code: the same refusal
            cls(**{field: (int if default is None else type(default))(float(bad))})


@pytest.mark.parametrize("command", [["start_training.py", "--num-envs", "0"], ["train_hrm.py", "--epochs", "0"],
                                     ["train_hrm.py", "--lr", "-1"]])
def test_the_scripts_refuse_a_bad_flag_in_one_line_before_anything_runs(command, tmp_path):
    """The scripts use the parsers walked above; --trigger -5, --threshold 1.5, --batch-size 0, --epochs -1,
    --threshold 2.0 and --warmup-steps -3 (the other values users tried) are among the walked flags."""
    result = subprocess.run([sys.executable, *command, "--db", str(tmp_path / "aegis.db")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and command[1] in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "aegis.db").exists()  # refused before anything ran


@pytest.mark.parametrize("cls", [AgentConfig, DistillArgs])
def test_help_lists_every_flag_with_its_text(cls):
    """--help must render: a field's text such as "70 %" once made argparse's formatting crash train_hrm.py --help."""
    text = build_parser(cls, prog="x").format_help()
    for f in dataclasses.fields(cls):
        assert "--" + f.name.replace("_", "-") in text
    assert "70 %" in build_parser(DistillArgs, prog="x").format_help()
