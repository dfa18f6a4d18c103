"""Where tensors live and in which precision: "auto" is bf16 only where the hardware runs it natively."""

import pytest
import torch

from hrm.device import autocast, native_bf16, resolve_precision


def test_auto_precision_is_bf16_exactly_where_the_hardware_runs_it_natively():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16" if native_bf16(cpu) else "none")
    assert resolve_precision("none", cpu) == "none" and resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match="precision must be one of auto, none, bf16, fp16"):
        resolve_precision("fp8", cpu)


def test_bf16_autocast_runs_matmuls_in_bf16_and_none_leaves_fp32():
    x, w = torch.randn(4, 8), torch.randn(8, 3)
    with autocast(torch.device("cpu"), "bf16"):
        assert (x @ w).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "none"):
        assert (x @ w).dtype == torch.float32
