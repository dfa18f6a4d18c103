"""Run under torchrun by test_pretrain.py: `hrm.pretrain` on this rank, then this rank's parameters saved."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hrm.distributed import rank, shutdown_distributed  # noqa: E402
from hrm.pretrain import parse_config, pretrain  # noqa: E402


def main(out_dir: str, argv: list[str]) -> None:
    torch.set_num_threads(1)
    trainer, metrics = pretrain(parse_config(argv))
    torch.save({"params": dict(trainer.model.named_parameters()), "metrics": metrics},
               Path(out_dir) / f"rank{rank()}.pt")
    shutdown_distributed()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
