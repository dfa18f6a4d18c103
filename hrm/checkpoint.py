"""Checkpoint files: written atomically (temp file + rename), read with `weights_only=True`; model-only
checkpoints (weights + model config) for serving and the agent."""

import os
import tempfile
from pathlib import Path

import torch

from hrm.device import pick_device
from hrm.model import Hrm, HrmConfig


class CheckpointError(RuntimeError):
    """A checkpoint could not be read; the message says which file and why."""


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Writes `state` (tensors, numbers, strings, lists, dicts) to `path` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # a reader sees the old file or the new one, never half of one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Returns the state stored at `path`; raises CheckpointError if it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(e).__name__}: {str(e).splitlines()[0]})") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a state dict")
    return state


def model_config_from(state: dict, path: str | Path = "checkpoint") -> HrmConfig:
    """Returns the HrmConfig stored in a checkpoint state."""
    try:
        return HrmConfig(**state["model_config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} has no usable model config ({e})") from e


def save_model(model: Hrm, path: str | Path, **extra) -> Path:
    """Writes a model-only checkpoint (weights + model config, readable by load_model) atomically; returns it."""
    return save_checkpoint(path, {"model": model.state_dict(), "model_config": model.config.to_dict(), **extra})


def load_model(path: str | Path, device: torch.device | str | None = None) -> Hrm:
    """Returns the HRM stored in a checkpoint, in eval mode on `device`."""
    state = load_checkpoint(path)
    model = Hrm(model_config_from(state, path))
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {path} does not match its model config ({str(e).splitlines()[0]})") from e
    device = device if isinstance(device, torch.device) else pick_device(device)
    return model.to(device).eval()
