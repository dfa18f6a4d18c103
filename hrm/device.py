"""Where tensors live: the one place that picks a device and a mixed-precision dtype."""

import contextlib
import functools

import torch

MIXED_PRECISION = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
PRECISIONS = ("auto", *MIXED_PRECISION)
"""What a `precision` setting may say: "auto" resolves per device (`resolve_precision`)."""


def pick_device(requested: str | None = None) -> torch.device:
    """Returns `requested` if given (e.g. "cpu", "cuda:1"), else the best available: cuda → mps → cpu."""
    if requested:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {requested!r} was asked for but CUDA is not available; use --device cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@functools.cache  # asked on every RL forward batch: probe the hardware once per device
def native_bf16(device: torch.device) -> bool:
    """True where bf16 matmuls run natively: CUDA with bf16, or a CPU with AMX tiles (Sapphire Rapids and later) or
    AVX512-BF16 (Cooper Lake, AMD Zen 4 and later), where oneDNN runs them several times faster than fp32 (an AMD
    EPYC with AVX512-BF16: a 256 → 768 projection 4.9× on one thread; a long-student distillation step 1.7×). A CPU
    without either emulates bf16 and is slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    probes = (getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))
    return any(probe is not None and bool(probe()) for probe in probes)


def resolve_precision(precision: str, device: torch.device) -> str:
    """Returns the mixed precision to run in: `precision` itself, or for "auto" bf16 where `native_bf16`, else
    none."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "none"


def autocast(device: torch.device, mixed_precision: str):
    """Returns a context that runs the forward pass in `mixed_precision` ("none", "bf16", "fp16") on `device`."""
    if mixed_precision not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}, got {mixed_precision!r}")
    dtype = MIXED_PRECISION[mixed_precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
