"""Export a trained HRM for serving: ONNX or TorchScript, checked against PyTorch, laid out for Triton.

    python -m hrm.export --checkpoint runs/hrm.pt --format onnx --out runs/triton [--max-steps 8] [--name hrm]

ACT's "run segments until Q-halt > Q-continue" is a data-dependent loop, which a serving graph cannot hold.
`ExportableHrm` unrolls max_steps segments and turns halting into masks: every row runs every segment, and once a
row halts its answer state and step count are frozen with torch.where, so each row answers exactly as
`Hrm.predict(adaptive=True)` would. The written file is then run (ONNX Runtime, or the TorchScript module reloaded
from disk) beside `Hrm.predict` on random and on patterned inputs; the export fails unless the halting steps are
identical and the logits agree within 1e-4.

ONNX goes through torch's TorchScript-based exporter (`dynamo=False`, dynamic batch axis via `dynamic_axes`): on
the unrolled graph it is ~10× faster than the dynamo exporter and needs no onnxscript, and both give the same
parity. The model repository follows Triton's layout: `<out>/<name>/config.pbtxt` and `<out>/<name>/1/model.onnx`
(or `model.pt`).
"""

import copy
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import onnx
import onnxruntime
import torch
from torch import nn

from hrm.checkpoint import CheckpointError, load_model
from hrm.cli import parse_args
from hrm.model import Hrm, HrmConfig

FORMATS = {"onnx": "model.onnx", "torchscript": "model.pt"}
PLATFORMS = {"onnx": "onnxruntime_onnx", "torchscript": "pytorch_libtorch"}
# 14: the first opset the exporter writes scaled_dot_product_attention for; 20: its last supported opset.
OPSETS = range(14, 21)
DEFAULT_OPSET = 17
TOLERANCE = 1e-4
"""The default bound on |exported − Hrm.predict| over the logits of an fp32 export."""


class ExportError(RuntimeError):
    """An export could not be written or failed its checks; the message says what to do."""


class ExportableHrm(nn.Module):
    """`Hrm.predict(adaptive=True)` as a static graph: max_steps segments unrolled, halting as masks.

    forward(inputs (B, T) int64, task_ids (B,) int64, lengths (B,) int64) -> (logits (B, output_len, V) fp32,
    steps (B,) int32). `lengths` counts each row's real tokens at the end of `inputs` (the agent's left-padded
    inputs; T for rows without padding): the graph masks the padding out of attention instead of trimming it, which
    gives `Hrm.predict`'s outputs for a batch with "lengths".
    """

    def __init__(self, model: Hrm, max_steps: int | None = None):
        super().__init__()
        self.model = model
        self.max_steps = model.config.halt_max_steps if max_steps is None else max_steps
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {self.max_steps}")

    def forward(self, inputs: torch.Tensor, task_ids: torch.Tensor,
                lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        x = m.embed(inputs, task_ids)  # (B, P+T, D)
        mask = None  # (B, P+T) bool: the prefix and each row's real tokens; none without a task prefix (as predict)
        if m.config.task_emb_len > 0:
            columns = torch.arange(inputs.shape[1], device=inputs.device)
            real = columns >= inputs.shape[1] - lengths.unsqueeze(-1)  # (B, T)
            mask = torch.cat((torch.ones_like(real[:, :m.config.task_emb_len]), real), dim=1)
        z_H, z_L = m.H_init.expand_as(x), m.L_init.expand_as(x)
        answer_state = z_H  # (B, P+T, D): z_H of the segment where each row halted
        # *_like, not torch.zeros(B, device=...): a traced device would pin the TorchScript module to the CPU.
        halted = torch.zeros_like(task_ids, dtype=torch.bool)  # (B,)
        steps = torch.zeros_like(task_ids, dtype=torch.int32)  # (B,)
        for step in range(1, self.max_steps + 1):
            z_H, z_L = m.segment(z_H, z_L, x, mask)
            q_halt, q_continue = m.q_values(z_H)
            answer_state = torch.where(halted.view(-1, 1, 1), answer_state, z_H)
            steps = torch.where(halted, steps, step)
            halted = halted | (q_halt > q_continue)
        # The head runs once, on the frozen states: the same logits as reading each row at its halting segment.
        return m.answer(answer_state, inputs, mask).float(), steps


@dataclass(frozen=True)
class TensorSpec:
    """One served tensor: its name in the exported file, Triton's data type, and its shape per example."""

    name: str
    data_type: str
    dims: tuple[int, ...]  # without the batch axis; () is one value per example


def tensor_specs(config: HrmConfig, fmt: str) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Returns the (inputs, outputs) an export of `config` in `fmt` serves, in forward's order."""
    # TorchScript has no output names, so Triton's PyTorch backend binds tensors by the `<name>__<index>` convention.
    suffix = (lambda i: f"__{i}") if fmt == "torchscript" else (lambda i: "")
    inputs = [TensorSpec("inputs" + suffix(0), "TYPE_INT64", (config.seq_len,)),
              TensorSpec("task_ids" + suffix(1), "TYPE_INT64", ()),
              TensorSpec("lengths" + suffix(2), "TYPE_INT64", ())]
    outputs = [TensorSpec("logits" + suffix(0), "TYPE_FP32", (config.output_len, config.vocab_size)),
               TensorSpec("steps" + suffix(1), "TYPE_INT32", ())]
    return inputs, outputs


def triton_config(name: str, fmt: str, config: HrmConfig, max_batch_size: int) -> str:
    """Returns the config.pbtxt text of a Triton model with dynamic batching over the exported tensors."""

    def block(spec: TensorSpec) -> str:
        # Triton wants at least one dim per example: a per-example scalar is served as [1] and reshaped to [].
        dims = ", ".join(map(str, spec.dims or (1,)))
        reshape = "" if spec.dims else "\n    reshape: { shape: [ ] }"
        return f'  {{\n    name: "{spec.name}"\n    data_type: {spec.data_type}\n    dims: [ {dims} ]{reshape}\n  }}'

    inputs, outputs = tensor_specs(config, fmt)
    sep = ",\n"
    return (f'name: "{name}"\nplatform: "{PLATFORMS[fmt]}"\nmax_batch_size: {max_batch_size}\n'
            f"input [\n{sep.join(map(block, inputs))}\n]\n"
            f"output [\n{sep.join(map(block, outputs))}\n]\n"
            "dynamic_batching {\n  max_queue_delay_microseconds: 1000\n}\n")


def patterned_batch(config: HrmConfig, batch_size: int = 4) -> dict[str, torch.Tensor]:
    """Returns structured inputs, cycling: padding only, the top token id repeated, a digit grid, it half blank."""
    position = torch.arange(config.seq_len)
    row, col = position // 9, position % 9
    # A solved-Sudoku-style grid (cyclic shifts of 1..9), as the Sudoku preset sees its digits; smaller
    # vocabularies wrap their digits around.
    grid = (row * 3 + row // 3 + col) % min(9, config.vocab_size - 1) + 1  # (T,)
    patterns = [torch.zeros_like(grid), torch.full_like(grid, config.vocab_size - 1), grid,
                torch.where(position % 2 == 0, grid, 0)]
    inputs = torch.stack([patterns[i % len(patterns)] for i in range(batch_size)])  # (B, T)
    return {"inputs": inputs, "task_ids": torch.arange(batch_size) % config.num_tasks,
            "lengths": torch.full((batch_size,), config.seq_len)}


def random_batch(config: HrmConfig, batch_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Returns uniformly random token ids, task ids and lengths (real tokens at the end of each row)."""
    g = torch.Generator().manual_seed(seed)
    return {"inputs": torch.randint(0, config.vocab_size, (batch_size, config.seq_len), generator=g),
            "task_ids": torch.randint(0, config.num_tasks, (batch_size,), generator=g),
            "lengths": torch.randint(config.output_len, config.seq_len + 1, (batch_size,), generator=g)}


@dataclass
class ExportReport:
    """What an export wrote and how closely the written model matches `Hrm.predict`."""

    format: str
    model_path: Path
    config_path: Path
    max_steps: int
    opset: int | None
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    max_abs_diff: dict[str, float]  # input kind → max |exported − Hrm.predict| over all logits
    tolerance: float

    def summary(self) -> str:
        """Returns the report as the lines the CLI prints."""
        size = self.model_path.stat().st_size / 2**20
        opset = f", opset {self.opset}" if self.opset else ""
        names = (", ".join(f"{t.name} {t.data_type}" for t in self.inputs) + " -> "
                 + ", ".join(f"{t.name} {t.data_type}" for t in self.outputs))
        diffs = ", ".join(f"{kind} inputs {diff:.2e}" for kind, diff in self.max_abs_diff.items())
        return (f"wrote {self.model_path} ({size:.1f} MiB{opset}, {self.max_steps} ACT segments unrolled)\n"
                f"wrote {self.config_path} ({names})\n"
                f"parity with Hrm.predict (fp32): max |logit diff| {diffs} (tolerance {self.tolerance:g}); "
                "halting steps identical")


def _write_onnx(wrapper: ExportableHrm, example: dict[str, torch.Tensor], path: Path, opset: int,
                names: tuple[list[str], list[str]]) -> None:
    input_names, output_names = names
    batch_axis = {name: {0: "batch"} for name in input_names + output_names}
    arguments = (example["inputs"], example["task_ids"], example["lengths"])
    torch.onnx.export(wrapper, arguments, str(path), dynamo=False, input_names=input_names, output_names=output_names,
                      dynamic_axes=batch_axis, opset_version=opset)
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"onnx.checker rejected {path}: {str(e).splitlines()[0]}") from e


def _load_runner(fmt: str, path: Path, input_names: list[str]):
    """Returns a function (inputs, task_ids, lengths) -> (logits, steps) running the file at `path` (torch tensors)."""
    if fmt == "onnx":
        options = onnxruntime.SessionOptions()
        # ORT's buffer-reuse planner is quadratic in the unrolled graph's size (agent-29m, 8 segments: ~40 s to
        # load, 2 s without it); the arena still recycles memory, and the numbers computed are the same.
        options.enable_mem_reuse = False
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def run_onnx(*tensors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            feeds = dict(zip(input_names, (t.numpy() for t in tensors), strict=True))
            return tuple(torch.from_numpy(out) for out in session.run(None, feeds))

        return run_onnx
    module = torch.jit.load(str(path), map_location="cpu")

    def run_torchscript(*tensors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return module(*tensors)

    return run_torchscript


def _check_parity(model: Hrm, run, max_steps: int, batches: dict[str, dict[str, torch.Tensor]],
                  tolerance: float) -> dict[str, float]:
    """Returns {input kind: max |logit diff|}; raises ExportError if steps differ or a diff exceeds `tolerance`."""
    diffs = {}
    for kind, batch in batches.items():
        expected = model.predict(batch, adaptive=True, max_steps=max_steps)
        logits, steps = run(batch["inputs"], batch["task_ids"], batch["lengths"])
        if not torch.equal(steps, expected.steps):
            raise ExportError(f"parity check failed on {kind} inputs: the export halts after {steps.tolist()} "
                              f"segments, Hrm.predict after {expected.steps.tolist()}")
        diffs[kind] = float((logits - expected.logits).abs().max())
        if diffs[kind] > tolerance:
            raise ExportError(f"parity check failed on {kind} inputs: logits differ from Hrm.predict by "
                              f"{diffs[kind]:.2e} > {tolerance:g} (--tolerance accepts more)")
    return diffs


def export(model: Hrm, fmt: Literal["onnx", "torchscript"], out_dir: str | Path, max_steps: int | None = None,
           name: str = "hrm", opset: int | None = None, max_batch_size: int = 64,
           tolerance: float = TOLERANCE) -> ExportReport:
    """Writes `model` as a Triton model `out_dir/name` in `fmt`, checks it against Hrm.predict; returns the report.

    The export is fp32 on the CPU (a copy: `model` is left as it was). Raises ExportError with a one-line message;
    an export that fails its parity check is deleted, so Triton never finds it.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ExportError(f"model name {name!r} is not a plain directory name (a letter or digit, then letters, "
                          "digits, '_', '.', '-')")
    if fmt == "torchscript" and opset is not None:
        raise ExportError("--opset applies only to --format onnx")
    opset = DEFAULT_OPSET if fmt == "onnx" and opset is None else opset
    if opset is not None and opset not in OPSETS:
        raise ExportError(f"ONNX opset {opset} is not supported; choose {OPSETS.start}..{OPSETS.stop - 1}")
    if max_batch_size < 1:
        raise ExportError(f"max batch size must be at least 1, got {max_batch_size}")
    if tolerance < 0:
        raise ExportError(f"tolerance must be at least 0, got {tolerance:g}")
    model = copy.deepcopy(model).float().cpu().eval()
    try:
        wrapper = ExportableHrm(model, max_steps).eval()
    except ValueError as e:
        raise ExportError(str(e)) from e

    model_dir = Path(out_dir) / name
    model_path = model_dir / "1" / FORMATS[fmt]
    config_path = model_dir / "config.pbtxt"
    inputs, outputs = tensor_specs(model.config, fmt)
    example = random_batch(model.config, batch_size=2, seed=1)  # checked below at other batch sizes
    try:
        model_path.parent.mkdir(parents=True, exist_ok=True)
        # The legacy-exporter deprecation, tracer and constant-folding notes are expected for this unrolled graph;
        # the parity check below is what tells whether the export is right.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "onnx":
                _write_onnx(wrapper, example, model_path, opset, ([t.name for t in inputs], [t.name for t in outputs]))
            else:
                traced = torch.jit.trace(wrapper, (example["inputs"], example["task_ids"], example["lengths"]),
                                         check_trace=False)
                torch.jit.save(traced, str(model_path))
        config_path.write_text(triton_config(name, fmt, model.config, max_batch_size))
    except OSError as e:
        raise ExportError(f"cannot write the model repository under {out_dir} ({e.strerror or e})") from e

    run = _load_runner(fmt, model_path, [t.name for t in inputs])
    batches = {"random": random_batch(model.config, batch_size=5), "patterned": patterned_batch(model.config)}
    try:
        diffs = _check_parity(model, run, wrapper.max_steps, batches, tolerance)
    except ExportError:
        model_path.unlink()
        config_path.unlink()
        for directory in (model_path.parent, model_dir):  # Triton would fail on a model folder without a config
            if not any(directory.iterdir()):
                directory.rmdir()
        raise
    return ExportReport(fmt, model_path, config_path, wrapper.max_steps, opset, inputs, outputs, diffs, tolerance)


@dataclass
class ExportArgs:
    """Export a trained HRM to ONNX or TorchScript as a Triton model repository, checked against PyTorch."""

    checkpoint: str = ""
    """The HRM checkpoint to export (written by hrm.Trainer.save)."""
    format: Literal["onnx", "torchscript"] = "onnx"
    """onnx (served by Triton's onnxruntime backend) or torchscript (its pytorch backend)."""
    out: str = "runs/triton"
    """The Triton model repository to write into: OUT/NAME/config.pbtxt and OUT/NAME/1/model.*."""
    max_steps: int | None = None
    """ACT segments unrolled in the exported graph; None: the model's halt_max_steps."""
    name: str = "hrm"
    """The model's name in the repository (its directory)."""
    opset: int | None = None
    """ONNX opset, 14..20; None: 17."""
    max_batch_size: int = 64
    """The largest batch Triton's dynamic batcher may form."""
    tolerance: float = TOLERANCE
    """The export fails if its logits differ from Hrm.predict's by more than this (fp32 rounding grows with the
    number of unrolled segments: see README, Serving with Triton)."""


def run(args: ExportArgs, checkpoint: str | Path) -> int:
    """Exports the checkpoint at `checkpoint` as `args` ask and prints the report; returns the exit code."""
    try:
        if not str(checkpoint):
            raise ExportError("no checkpoint given; pass --checkpoint PATH")
        model = load_model(checkpoint, "cpu")
        report = export(model, args.format, args.out, args.max_steps, args.name, args.opset, args.max_batch_size,
                        args.tolerance)
    except (CheckpointError, ExportError) as e:
        print(f"hrm.export: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m hrm.export`; returns the process exit code."""
    args = parse_args(ExportArgs, argv, prog="python -m hrm.export")
    return run(args, args.checkpoint)  # a layer above may resolve the checkpoint differently, then call run()


if __name__ == "__main__":
    sys.exit(main())
