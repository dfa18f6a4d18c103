"""Soak: the whole loop for a long time, killed and restarted, with its memory and store watched. Not a test.

    python bench/soak.py [--minutes 30] [--kill-every 4] [--out runs/bench-soak]

Runs `start_training.py --teacher oracle:0.5` (the product's defaults otherwise: collect, distil, switch, RL rounds)
from an empty store for `--minutes`, sends it SIGKILL every `--kill-every` minutes and starts it again at once.
Every 10 s it samples the agent's resident memory (its own process, from /proc) and the store's size. At each kill it
counts the decisions stored just before and checks after the restart that every one of them is still there.
Prints: kills survived, decisions lost (aim 0), RSS growth of each agent process after its first 5 minutes (aim
≤ 10 %; processes that lived less than 5 minutes are listed without it), store growth per hour, and the phases
reached. Every sample goes to `<out>/samples.jsonl` (time_s, agent process, RSS MB, store bytes).
"""

import argparse
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.store import ExperienceStore  # noqa: E402
from hrm.runlog import MetricsLog  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 300.0  # seconds before an agent's memory counts as its baseline


def rss_mb(pid: int) -> float | None:
    """Returns the resident memory of process `pid` in MB, or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def store_bytes(db: Path) -> int:
    """Returns the store's size on disk: the file and its write-ahead log."""
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())


def start_agent(db: Path, out: Path, log) -> subprocess.Popen:
    """Starts the agent on `db` with the oracle:0.5 teacher and the product's defaults."""
    return subprocess.Popen([sys.executable, str(ROOT / "start_training.py"), "--db", str(db), "--out",
                             str(out / "models"), "--teacher", "oracle:0.5"], stdout=log, stderr=subprocess.STDOUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--kill-every", type=float, default=4.0, help="minutes between SIGKILLs")
    parser.add_argument("--out", default="runs/bench-soak", help="folder for the store and logs (replaced)")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    db = out / "aegis.db"
    log = (out / "agent.log").open("w")
    trace = MetricsLog(out / "samples.jsonl")  # one line per 10 s sample, to plot
    started = time.time()
    agent, agent_started = start_agent(db, out, log), time.time()
    samples: list[list[tuple[float, float]]] = [[]]  # per agent process: (seconds since it started, RSS MB)
    sizes: list[tuple[float, int]] = []
    kills, lost, next_kill = 0, 0, started + args.kill_every * 60
    while time.time() - started < args.minutes * 60:
        time.sleep(10)
        rss = rss_mb(agent.pid)
        if rss is not None:
            samples[-1].append((time.time() - agent_started, rss))
        if db.exists():
            sizes.append((time.time() - started, store_bytes(db)))
        trace.write({"process": len(samples), "rss_mb": rss, "store_bytes": sizes[-1][1] if sizes else 0})
        if time.time() >= next_kill:
            agent.send_signal(signal.SIGKILL)
            agent.wait()
            store = ExperienceStore(db)
            before, last_id = store.count_decisions(), store.last_decision_id()
            store.close()
            kills += 1
            agent, agent_started = start_agent(db, out, log), time.time()
            samples.append([])
            time.sleep(5)
            store = ExperienceStore(db)  # every decision stored before the kill must still be there after the restart
            lost += before - sum(1 for _ in store.decisions(up_to=last_id))
            store.close()
            next_kill = time.time() + args.kill_every * 60
    agent.send_signal(signal.SIGTERM)
    asked = time.time()
    try:
        agent.wait(timeout=120)
        stopped = f"stopped {time.time() - asked:.1f} s after SIGTERM"
    except subprocess.TimeoutExpired:
        agent.kill()
        agent.wait()
        stopped = "did not stop within 120 s of SIGTERM (killed)"
    store = ExperienceStore(db)
    phases = [e.data.get("phase") for e in reversed(store.events(limit=100_000, kind="phase"))]
    hours = (time.time() - started) / 3600
    print(f"{args.minutes:g} min, SIGKILL every {args.kill_every:g} min: {kills} kills survived, {lost} decisions "
          f"lost (aim 0) | {store.count_decisions():,} decisions | phases reached: "
          f"{' → '.join(dict.fromkeys(phases))} | the last agent {stopped}")
    for i, process in enumerate(samples):
        warm = [mb for t, mb in process if t >= WARM_UP]
        if len(warm) >= 2:
            print(f"  agent process {i + 1}: RSS {warm[0]:.0f} MB at 5 min → {warm[-1]:.0f} MB after "
                  f"{process[-1][0] / 60:.1f} min: growth {warm[-1] / warm[0] - 1:+.1%} (aim ≤ +10 %); between "
                  f"{min(warm):.0f} and {max(warm):.0f} MB after 5 min")
        elif process:
            print(f"  agent process {i + 1}: lived {process[-1][0] / 60:.1f} min (< 5 min: no growth figure), "
                  f"RSS at most {max(mb for _, mb in process):.0f} MB")
    if len(sizes) >= 2:
        print(f"store: {sizes[-1][1] / 1e6:.1f} MB, growing {(sizes[-1][1] - sizes[0][1]) / 1e6 / hours:.0f} MB/hour")


if __name__ == "__main__":
    main()
