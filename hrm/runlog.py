"""Per-run metrics: one JSON object per line (for plots), one dense line on the console (for people), and the same
numbers as TensorBoard scalars when a folder is given (PyTorch's own writer; `tensorboard --logdir DIR` shows them)."""

import json
import math
import time
from pathlib import Path


def format_metrics(metrics: dict) -> str:
    """Returns `metrics` as one dense line: "step 12 | loss 0.4213 | accuracy 0.912 | ..."."""
    parts = []
    for key, value in metrics.items():
        if isinstance(value, float):
            value = "nan" if math.isnan(value) else f"{value:.4g}"
        parts.append(f"{key} {value}")
    return " | ".join(parts)


class MetricsLog:
    """Appends metric records to a JSONL file; each record gets the wall time since the log was opened. With
    `tensorboard`, every number of a record is also a scalar there, at the record's "step" (or its position)."""

    def __init__(self, path: str | Path, tensorboard: str | Path | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.start = time.time()
        self.records = 0
        self.tensorboard = None
        if tensorboard is not None:
            from torch.utils.tensorboard import SummaryWriter  # loads only when asked for

            self.tensorboard = SummaryWriter(str(tensorboard))

    def write(self, record: dict) -> None:
        """Appends one record (numbers, strings) as a JSON line (and its numbers as TensorBoard scalars)."""
        record = {"time_s": round(time.time() - self.start, 3), **record}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        self.records += 1
        if self.tensorboard is not None:
            step = int(record.get("step", self.records))
            for key, value in record.items():
                if isinstance(value, int | float) and not isinstance(value, bool) and key != "step":
                    self.tensorboard.add_scalar(key, value, step)
            self.tensorboard.flush()
