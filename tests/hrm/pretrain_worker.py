"""Run under torchrun by test_pretrain.py: `hrm.pretrain` on this rank, then this rank's parameters saved.

Exits non-zero if the process group's worker threads outlive `shutdown_distributed` (Linux): such threads can
abort the process at interpreter exit when they release a tensor after Python has shut down."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hrm.distributed import rank, shutdown_distributed  # noqa: E402
from hrm.pretrain import parse_config, pretrain  # noqa: E402


def threads() -> int:
    """Returns the number of this process's OS threads (0 where /proc is not available)."""
    tasks = Path("/proc/self/task")
    return len(list(tasks.iterdir())) if tasks.is_dir() else 0


def main(out_dir: str, argv: list[str]) -> None:
    torch.set_num_threads(1)
    threads_at_start = threads()
    trainer, metrics = pretrain(parse_config(argv))
    torch.save({"params": dict(trainer.model.named_parameters()), "metrics": metrics},
               Path(out_dir) / f"rank{rank()}.pt")
    shutdown_distributed()
    if threads() > threads_at_start:
        sys.exit(f"{threads() - threads_at_start} thread(s) outlived shutdown_distributed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
