"""Run metrics: JSONL records, and the same numbers as TensorBoard scalars read back with TensorBoard's reader."""

import json

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from hrm.runlog import MetricsLog


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Returns {tag: [(step, value)]} from the event files in `folder`."""
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_every_number_of_a_record_is_a_scalar_at_its_step(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl", tmp_path / "tb")
    log.write({"step": 10, "lm_loss": 2.5, "eval_agreement": 0.25, "note": "text", "accepted": True})
    log.write({"step": 20, "lm_loss": 1.5})
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["lm_loss"] for line in lines] == [2.5, 1.5]
    found = scalars(tmp_path / "tb")
    assert found["lm_loss"] == [(10, 2.5), (20, 1.5)]
    assert found["eval_agreement"] == [(10, 0.25)]
    assert "note" not in found and "accepted" not in found and "time_s" in found
