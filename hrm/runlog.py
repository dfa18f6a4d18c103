"""Per-run metrics: one JSON object per line (for plots), one dense line on the console (for people)."""

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
    """Appends metric records to a JSONL file; each record gets the wall time since the log was opened."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.start = time.time()

    def write(self, record: dict) -> None:
        """Appends one record (numbers, strings) as a JSON line."""
        record = {"time_s": round(time.time() - self.start, 3), **record}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
