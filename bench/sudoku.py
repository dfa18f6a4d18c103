"""Sudoku on a CPU: held-out exact accuracy of an HRM against a plain transformer with the same parameters.

    python bench/sudoku.py                     # the README recipe (see "Sudoku on a CPU")

Builds (or reuses) a generated 9×9 dataset: 1000 training puzzles, each with augmented copies, and a held-out
test split of other puzzles. Trains a small HRM the way `python -m hrm.pretrain` does (Trainer + PuzzleDataset:
AdamATan2 + sign-SGD, ACT carry kept across steps, stablemax loss), then the paper's "direct prediction" baseline:
the same embedding, the same L and H blocks and the same head, the blocks stacked and run once (no recurrence, no
ACT), trained on the same batches with the same loss and optimizers. Budget: the same number of optimizer steps;
the baseline then keeps training until it has used the HRM's wall time too. Prints both side by side.
"""

import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hrm import Hrm, HrmConfig, TrainConfig, Trainer, evaluate, fit  # noqa: E402
from hrm.cli import parse_args  # noqa: E402
from hrm.puzzles.build import BuildArgs, build  # noqa: E402
from hrm.puzzles.dataset import PuzzleDataset  # noqa: E402

CONSOLE = Console(stderr=True, soft_wrap=True)


@dataclass
class BenchArgs:
    """HRM vs a plain transformer with the same parameters on generated Sudoku, trained on this machine."""

    data_dir: str = "runs/bench-sudoku"
    """Where the generated dataset is built (and reused when its settings match)."""
    givens: int = 60
    """Clues per generated puzzle (fewer is harder)."""
    max_backtracks: int = 0
    """Keep puzzles the solver finishes with at most this many dead ends (0: naked singles alone solve them)."""
    train_puzzles: int = 1000
    num_aug: int = 100
    """Augmented copies per training puzzle."""
    test_puzzles: int = 500
    hidden_size: int = 64
    num_heads: int = 2
    H_layers: int = 1
    L_layers: int = 1
    H_cycles: int = 1
    L_cycles: int = 2
    halt_max_steps: int = 2
    pos_encoding: str = "learned"
    """Both models: with 1D RoPE neither small model found the row/column/box structure in a CPU budget."""
    batch_size: int = 32
    steps: int = 5000
    """Optimizer steps of each model (one ACT segment per step for the HRM)."""
    lr: float = 2e-3
    lr_min_ratio: float = 1.0
    """Cosine floor as a fraction of lr (1.0: constant after warmup, the seed's recipe); the baseline's
    same-wall-time extension runs at it."""
    warmup_steps: int = 100
    weight_decay: float = 0.1
    threads: int = 1
    """torch intra-op threads (1 is fastest for these small matrices, and on a busy machine)."""
    seed: int = 0


class DirectTransformer(Hrm):
    """The HRM's own embedding, blocks and head with its L blocks then H blocks run once on the input: a plain
    post-norm transformer of depth L_layers + H_layers. Used with halt_max_steps=1, so there is no ACT either."""

    def segment(self, z_H: torch.Tensor, z_L: torch.Tensor, x: torch.Tensor,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (the stack's output (B, P+T, D), z_L unchanged); the carried states play no part."""
        rope = self._rope(x.shape[1] - self.config.task_emb_len)
        for layer in (*self.L_level.layers, *self.H_level.layers):
            x = layer(x, rope, mask)
        return x, z_L


def dataset(args: BenchArgs) -> Path:
    """Returns the dataset folder, building it unless one with the same settings is there."""
    build_args = BuildArgs(output_dir=str(Path(args.data_dir) / f"givens{args.givens}-bt{args.max_backtracks}-aug"
                                          f"{args.num_aug}"), train_puzzles=args.train_puzzles,
                           test_puzzles=args.test_puzzles, num_aug=args.num_aug, givens=args.givens,
                           max_backtracks=args.max_backtracks, seed=args.seed)
    path = Path(build_args.output_dir)
    if (path / "test" / "dataset.json").is_file():
        if json.loads((path / "test" / "dataset.json").read_text()).get("build", {}).get("seed") == args.seed:
            return path
    start = time.perf_counter()
    build(build_args)
    print(f"built {path} in {time.perf_counter() - start:.0f}s")
    return path


def train(model: Hrm, args: BenchArgs, data: PuzzleDataset, steps: int) -> Trainer:
    """Returns the trainer of `model` after `steps` steps of the bench's recipe."""
    recipe = TrainConfig(total_steps=steps, lr=args.lr, lr_min_ratio=args.lr_min_ratio, warmup_steps=args.warmup_steps,
                         weight_decay=args.weight_decay, task_emb_lr=args.lr, task_emb_weight_decay=args.weight_decay,
                         grad_clip=0.0, seed=args.seed)
    trainer = Trainer(model, recipe, "cpu")
    fit(trainer, data.batch_at, log_every=max(1, steps // 10), console=CONSOLE)
    return trainer


def main() -> None:
    args = parse_args(BenchArgs, prog="python bench/sudoku.py")
    torch.set_num_threads(args.threads)
    path = dataset(args)
    data = PuzzleDataset(path, "train", args.batch_size, seed=args.seed)
    test = PuzzleDataset(path, "test", 256)
    meta = data.metadata
    config = HrmConfig(vocab_size=meta.vocab_size, seq_len=meta.seq_len, num_tasks=meta.num_puzzle_identifiers,
                       task_emb_dim=args.hidden_size, hidden_size=args.hidden_size, num_heads=args.num_heads,
                       H_layers=args.H_layers, L_layers=args.L_layers, H_cycles=args.H_cycles,
                       L_cycles=args.L_cycles, halt_max_steps=args.halt_max_steps, pos_encoding=args.pos_encoding)
    print(f"cpu | torch {torch.__version__} | {args.threads} thread(s) | {path}: {data.num_groups} puzzles × "
          f"{1 + args.num_aug} copies, {test.num_examples} test puzzles, {args.givens} givens | batch "
          f"{args.batch_size}, {args.steps} steps, lr {args.lr}")
    rows = []

    torch.manual_seed(args.seed)
    start = time.perf_counter()
    hrm = train(Hrm(config), args, data, args.steps)
    hrm_seconds = time.perf_counter() - start
    rows.append((f"HRM ({args.H_cycles}x{args.L_cycles} cycles, <={args.halt_max_steps} segments)",
                 hrm.model.num_parameters(), hrm.step, hrm_seconds, evaluate(hrm.model, test.test_batches())))

    torch.manual_seed(args.seed)
    start = time.perf_counter()
    direct = train(DirectTransformer(replace(config, halt_max_steps=1)), args, data, args.steps)
    direct_seconds = time.perf_counter() - start
    params = direct.model.num_parameters() - sum(p.numel() for p in direct.model.q_head.parameters())  # unused
    rows.append(("transformer, same steps", params, direct.step, direct_seconds,
                 evaluate(direct.model, test.test_batches())))
    # Same wall time: the baseline goes on (at the cosine floor) until it has trained as long as the HRM.
    direct.config = replace(direct.config, total_steps=10**9)
    deadline = time.perf_counter() + max(0.0, hrm_seconds - direct_seconds)
    fit(direct, data.batch_at, log_every=10**9, console=CONSOLE, until=lambda _: time.perf_counter() >= deadline)
    rows.append(("transformer, same wall time", params, direct.step, time.perf_counter() - start,
                 evaluate(direct.model, test.test_batches())))

    print(f"\n{'model':<34} {'params':>9} {'steps':>6} {'train s':>8} {'test exact':>10} {'test cells':>10}")
    for name, n, steps, seconds, m in rows:
        print(f"{name:<34} {n:>9,} {steps:>6} {seconds:>8.0f} {m['exact_accuracy']:>10.3f} {m['accuracy']:>10.3f}")
    hrm_exact = rows[0][4]["exact_accuracy"]
    ratios = [hrm_exact / r[4]["exact_accuracy"] if r[4]["exact_accuracy"] else float("inf") for r in rows[1:]]
    print(f"HRM / transformer held-out exact accuracy: {ratios[0]:.2f}x at the same steps, {ratios[1]:.2f}x at the "
          f"same wall time (HRM mean segments at test: {rows[0][4]['steps']:.1f})")


if __name__ == "__main__":
    main()
