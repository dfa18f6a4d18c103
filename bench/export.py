"""Decision latency of the exported HRM: ONNX Runtime against PyTorch eager, side by side in one run, on the CPU.

    python bench/export.py [--batch-sizes 1 16] [--repeats 5] [--threads N]

Exports `agent-29m` with random weights (no trained checkpoint is needed to time it) through hrm.export, then times
one decision call, `Hrm.predict(batch, adaptive=True)` in eager PyTorch against the exported graph in ONNX Runtime,
alternating the two on the same inputs with the same thread count. With random weights the Q head's halt and
continue logits tie, so no row halts early: both run all halt_max_steps segments, the worst-case latency. The ONNX
Runtime session uses its default options (what Triton's onnxruntime backend runs), except that idle worker threads
do not spin: spinning threads would steal the cores from the PyTorch call that follows.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import onnxruntime
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hrm import Hrm, HrmConfig  # noqa: E402
from hrm.export import export, random_batch  # noqa: E402


@torch.inference_mode()
def time_decisions(model: Hrm, session: onnxruntime.InferenceSession, batch: dict[str, torch.Tensor],
                   repeats: int) -> tuple[float, float]:
    """Returns the median ms of one decision call on `batch`: (PyTorch eager, ONNX Runtime)."""
    feeds = {name: batch[name].numpy() for name in ("inputs", "task_ids", "lengths")}
    runs = {"torch": lambda: model.predict(batch, adaptive=True), "ort": lambda: session.run(None, feeds)}
    times = {name: [] for name in runs}
    for call in runs.values():  # one warm-up call each
        call()
    for _ in range(repeats):
        for name, call in runs.items():  # alternate, so drift in machine load hits both alike
            start = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - start) * 1e3)
    return statistics.median(times["torch"]), statistics.median(times["ort"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per runtime and batch size")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads for both")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="parity bound for the export (fp32 rounding over 8 unrolled segments exceeds 1e-4)")
    args = parser.parse_args()
    threads = args.threads
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__} | onnxruntime {onnxruntime.__version__} | CPU threads {threads} | "
          "agent-29m, random weights")

    torch.manual_seed(0)
    model = Hrm(HrmConfig.preset("agent-29m")).eval()
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        report = export(model, "onnx", out, tolerance=args.tolerance)
        print(f"export + parity check: {time.perf_counter() - start:.0f} s | {report.max_steps} segments unrolled | "
              "max |logit diff| " + ", ".join(f"{k} {v:.2e}" for k, v in report.max_abs_diff.items()))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        start = time.perf_counter()
        session = onnxruntime.InferenceSession(str(report.model_path), options, providers=["CPUExecutionProvider"])
        print(f"ONNX Runtime session load (default options, as Triton loads it): {time.perf_counter() - start:.0f} s")

    print(f"{'batch':>5} {'PyTorch ms/call':>15} {'ORT ms/call':>11} {'PyTorch ms/decision':>19} "
          f"{'ORT ms/decision':>15} {'ORT/PyTorch':>11}")
    for batch_size in args.batch_sizes:
        eager, ort = time_decisions(model, session, random_batch(model.config, batch_size, seed=batch_size),
                                    args.repeats)
        print(f"{batch_size:>5} {eager:>15.1f} {ort:>11.1f} {eager / batch_size:>19.1f} {ort / batch_size:>15.1f} "
              f"{ort / eager:>11.2f}")


if __name__ == "__main__":
    main()
