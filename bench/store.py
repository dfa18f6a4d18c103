"""Experience-store write throughput, alone and with a concurrent reader process, side by side in one run.

    python bench/store.py [--batches 300] [--db-dir /tmp]

Writes decisions in batches of 64 (one transaction each, as the runner does) to a fresh SQLite store; then again
while a second process reads the summary and the decision count every 100 ms. Prints decisions/s for both, their
ratio, and the reader's query count and errors (there must be none).
"""

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.store import DecisionRecord, EpisodeStart, ExperienceStore  # noqa: E402

ACTIONS = ("south", "north", "east", "west", "pickup", "dropoff")
OBSERVATION = "+---------+\n|R: | : :G|\n| : | : : |\n| : : : : |\n| | : | : |\n|Y| : |B: |\n+---------+\n" * 1


def write(db: str, batches: int) -> float:
    """Returns decisions/s for `batches` transactions of 64 decisions."""
    store = ExperienceStore(db)
    episodes = store.start_episodes([EpisodeStart("Taxi-v4", i, "gpt2") for i in range(64)])
    start = time.perf_counter()
    for b in range(batches):
        store.record_step([DecisionRecord(e, b, "Taxi-v4", 2, str(b), OBSERVATION, "Deliver the passenger.\n\n"
                                          + OBSERVATION + "\nLegal actions: south, north.\nAction:", ACTIONS, b % 6,
                                          (0.5, 0.1, 0.1, 0.1, 0.1, 0.1), "gpt2", None, -1.0, False, False)
                           for e in episodes])
    return batches * 64 / (time.perf_counter() - start)


def read(db: str, stop, counts) -> None:
    """Reads the summary and the decision count every 100 ms until `stop`; puts (queries, errors) in `counts`."""
    store = ExperienceStore(db)
    queries, errors = 0, []
    while not stop.is_set():
        try:
            store.summary()
            store.count_decisions()
            queries += 1
        except Exception as e:  # counted and reported: the benchmark's point is that there are none
            errors.append(repr(e))
        time.sleep(0.1)
    counts.put((queries, errors))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--db-dir", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.db_dir) as folder:
        alone = write(f"{folder}/alone.db", args.batches)
        shared = f"{folder}/shared.db"
        ExperienceStore(shared).close()
        ctx = mp.get_context("spawn")
        stop, counts = ctx.Event(), ctx.Queue()
        reader = ctx.Process(target=read, args=(shared, stop, counts))
        reader.start()
        time.sleep(2.0)  # let the reader start querying
        with_reader = write(shared, args.batches)
        stop.set()
        queries, errors = counts.get(timeout=60)
        reader.join()
    print(f"SQLite, batches of 64: alone {alone:,.0f} decisions/s | with a reader every 100 ms {with_reader:,.0f} "
          f"decisions/s ({with_reader / alone:.2f}× alone) | reader: {queries} queries, {len(errors)} errors")
    for error in errors[:3]:
        print("  reader error:", error)


if __name__ == "__main__":
    main()
