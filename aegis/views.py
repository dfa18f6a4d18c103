"""What the REPL shows: rich renderables built from the experience store's rows (each view is a few short reads).

Store text (event messages, observations, errors) goes into `Text` objects, never through rich markup, so a
bracket in a message prints as a bracket.
"""

import math
from collections.abc import Iterable, Sequence
from datetime import datetime

from rich.console import Group
from rich.table import Table
from rich.text import Text

from aegis.state import RlProgress, process_gone, read_rl
from agent.policy import Decision, Observation
from data.store import EpisodeEnd, EpisodeRow, EventRow, ExperienceStore, SummaryRow, TrainingRunRow, VersionRow

SPARKS = "▁▂▃▄▅▆▇█"
STYLES = {"active": "bold green", "candidate": "yellow", "retired": "dim", "rejected": "red", "running": "cyan",
          "succeeded": "green", "failed": "red", "interrupted": "magenta"}
METRIC_ORDER = ("epoch", "step", "lm_loss", "eval_loss", "eval_agreement")
MAX_METRIC_COLUMNS = 8
MAX_EPOCH_ROWS = 12


def sparkline(values: Iterable) -> str:
    """Returns one block character per finite number in `values`, scaled from their minimum to their maximum."""
    finite = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
    if not finite:
        return ""
    low, span = min(finite), max(finite) - min(finite)
    top = len(SPARKS) - 1
    return "".join(SPARKS[top // 2 if span == 0 else round((v - low) / span * top)] for v in finite)


def progress_bar(done: float, total: float, width: int = 20) -> str:
    """Returns a text bar such as `██████░░░░ 3/5` (the fraction is clipped to [0, 1])."""
    fraction = min(max(done / total, 0.0), 1.0) if total > 0 else 0.0
    filled = round(fraction * width)
    return f"{'█' * filled}{'░' * (width - filled)} {done:g}/{total:g}"


def number(value, percent: bool = False) -> str:
    """Returns a short rendering of a metric: a percentage, an integer with separators, 4 significant digits."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value is None else str(value)
    if percent:
        return f"{value:.1%}"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def when(moment: datetime | None) -> str:
    """Returns a timestamp as `MM-DD HH:MM:SS` (UTC), or — when there is none."""
    return "—" if moment is None else moment.strftime("%m-%d %H:%M:%S")


def _styled(status: str) -> Text:
    return Text(status, style=STYLES.get(status, ""))


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    for column in columns:
        table.add_column(column)
    return table


def _is_percent(key: str) -> bool:
    return "agreement" in key or "accuracy" in key or key.endswith("rate")


def compact_metrics(metrics: dict, keys: Sequence[str] | None = None) -> str:
    """Returns `key value` pairs of a metrics dict on one line (the given keys, or every number)."""
    keys = [k for k in (keys or metrics) if k in metrics and isinstance(metrics[k], int | float)]
    return ", ".join(f"{k} {number(metrics[k], _is_percent(k))}" for k in keys)


def acting_policy(version: VersionRow | None, teacher: str) -> str:
    """Returns who acts: the active HRM version or the teacher."""
    if version is None:
        return f"teacher {teacher} (no active model)"
    agreement = version.metrics.get("agreement")
    detail = f", held-out agreement {number(agreement, True)}" if agreement is not None else ""
    return f"hrm:v{version.id} — version {version.id} ({version.kind}{detail})"


def run_progress(run: TrainingRunRow) -> str:
    """Returns a run's epochs done out of its configured epochs as a bar, or the epochs done alone."""
    done = run.metrics[-1].get("epoch", len(run.metrics)) if run.metrics else 0
    total = run.config.get("epochs")
    return progress_bar(done, total) if isinstance(total, int | float) else f"epoch {number(done)}"


def run_status(run: TrainingRunRow) -> str:
    """Returns the run's status, "interrupted" for a running run whose process is gone."""
    return "interrupted" if process_gone(run) else run.status


def run_outcome(run: TrainingRunRow) -> str:
    """Returns one line on a training run: kind, status, progress, the latest agreement, version or error."""
    parts = [f"run {run.id} {run.kind} {run_status(run)}", run_progress(run)]
    last = run.metrics[-1] if run.metrics else {}
    if "eval_agreement" in last:
        parts.append(f"agreement {number(last['eval_agreement'], True)}")
    if run.model_version_id is not None:
        parts.append(f"→ version {run.model_version_id}")
    if run.error:
        parts.append(f"error: {run.error.splitlines()[0]}")
    return " · ".join(parts)


def status_view(store: ExperienceStore) -> Table:
    """Returns the `status` panel: phase, decisions, episodes, who acts, the last training run, RL progress."""
    summary = store.summary()
    per_policy: dict[str, int] = {}
    for row in summary:
        per_policy[row.policy] = per_policy.get(row.policy, 0) + row.decisions
    episodes = sum(row.episodes for row in summary)
    runs = store.training_runs(limit=1)
    rl = read_rl(store)
    envs = store.get_state("envs")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows = [
        ("phase", store.get_state("phase") or "not started (the agent has not run on this store)"),
        ("acting", acting_policy(store.active_version(), store.get_state("teacher") or "tiny")),
        ("decisions", f"{sum(per_policy.values()):,}" + (
            " (" + ", ".join(f"{p} {n:,}" for p, n in sorted(per_policy.items())) + ")" if per_policy else "")),
        ("episodes", f"{episodes:,} finished (`episodes` shows mean returns per policy)"),
        ("envs", ", ".join(envs) if envs else "—"),
        ("training", run_outcome(runs[0]) if runs else "no training run yet"),
        ("RL", _rl_line(rl)),
    ]
    for key, value in rows:
        grid.add_row(key, Text(value))
    return grid


def _rl_line(rl: RlProgress) -> str:
    if not rl.rounds:
        return "not started"
    line = (f"{rl.rounds:,} rounds ({rl.accepted:,} accepted), {rl.episodes:,} episodes, {rl.decisions:,} "
            "decisions")
    if rl.learner is not None:
        line += f"; training on from rejected v{rl.learner} ({rl.rejected_in_row} rejected in a row)"
    last = compact_metrics(rl.last)
    return f"{line}; last: {last}" if last else line


def runs_table(runs: Sequence[TrainingRunRow]) -> Table:
    """Returns a table of training runs: status, progress, latest agreement and loss, version, error."""
    table = _table("training runs", "run", "kind", "status", "started", "progress", "agreement", "eval loss",
                   "version", "error")
    for run in runs:
        last = run.metrics[-1] if run.metrics else {}
        table.add_row(str(run.id), run.kind, _styled(run_status(run)), when(run.started_at), run_progress(run),
                      number(last.get("eval_agreement"), True), number(last.get("eval_loss")),
                      number(run.model_version_id), Text(run.error.splitlines()[0] if run.error else ""))
    return table


def run_detail(run: TrainingRunRow) -> Group:
    """Returns one run in detail: progress bar, loss and agreement sparklines, the per-epoch metrics table."""
    lines = [Text(run_outcome(run), style="bold")]
    for key in ("eval_loss", "eval_agreement", "lm_loss"):
        values = [m[key] for m in run.metrics if isinstance(m.get(key), int | float)]
        if values:
            percent = _is_percent(key)
            lines.append(Text(f"{key:<15} {sparkline(values)}  {number(values[0], percent)} → "
                              f"{number(values[-1], percent)}"))
    if not run.metrics:
        lines.append(Text("no evaluation yet"))
        return Group(*lines)
    keys = [k for k in METRIC_ORDER if any(k in m for m in run.metrics)]
    keys += sorted({k for m in run.metrics for k in m} - set(keys))
    keys = keys[:MAX_METRIC_COLUMNS]
    shown = run.metrics[-MAX_EPOCH_ROWS:]
    title = f"per-epoch metrics of run {run.id}" + (
        f" (last {len(shown)} of {len(run.metrics)})" if len(shown) < len(run.metrics) else "")
    table = _table(title, *keys)
    for metrics in shown:
        table.add_row(*(number(metrics.get(k), _is_percent(k)) for k in keys))
    return Group(*lines, table)


def models_table(versions: Sequence[VersionRow]) -> Table:
    """Returns a table of model versions: kind, status, parent, what each replaced, metrics, checkpoint."""
    table = _table("model versions", "version", "kind", "status", "parent", "replaced", "agreement", "metrics",
                   "created", "checkpoint")
    for v in versions:
        others = compact_metrics(v.metrics, [k for k in v.metrics if k != "agreement"][:4])
        table.add_row(str(v.id), v.kind, _styled(v.status), number(v.parent_id), number(v.replaced_id),
                      number(v.metrics.get("agreement"), True), Text(others), when(v.created_at),
                      Text(v.checkpoint_path))
    return table


def episodes_table(episodes: Sequence[EpisodeRow]) -> Table:
    """Returns a table of episodes: env, policy, return, length, success, when it ended."""
    table = _table("recent episodes", "episode", "env", "policy", "return", "length", "success", "ended")
    for e in episodes:
        success = "—" if e.success is None else ("yes" if e.success else "no")
        table.add_row(str(e.id), e.env, Text(e.policy), number(e.episode_return), str(e.length), success,
                      when(e.ended_at))
    return table


def summary_table(rows: Sequence[SummaryRow]) -> Table:
    """Returns per (env, policy) totals: finished episodes, decisions, mean return, success rate."""
    table = _table("mean returns per policy (all finished episodes)", "env", "policy", "episodes", "decisions",
                   "mean return", "success")
    for row in rows:
        table.add_row(row.env, Text(row.policy), f"{row.episodes:,}", f"{row.decisions:,}",
                      number(row.mean_return), number(row.success_rate, True))
    return table


def events_table(events: Sequence[EventRow]) -> Table:
    """Returns a table of events, in the order given."""
    table = _table("events (newest first)", "time", "kind", "message")
    for e in events:
        table.add_row(when(e.time), e.kind, Text(e.message))
    return table


def decision_view(observation: Observation, decision: Decision, policy: str, step: int) -> Group:
    """Returns an observation's text, each legal action's probability under `policy` and the chosen action."""
    table = _table(f"{policy} at step {step} of {observation.env_name}", "action", "probability", "")
    for i, (action, p) in enumerate(zip(observation.legal_actions, decision.probs, strict=True)):
        chosen = i == decision.action
        table.add_row(Text(action, style="bold green" if chosen else ""), f"{p:.3f}",
                      Text("█" * round(p * 30) + ("  ← chosen" if chosen else "")))
    return Group(Text(observation.text), table)


def run_report(env: str, policy: str, ended: Sequence[EpisodeEnd]) -> str:
    """Returns one line on episodes just played: mean, min and max return, success rate, mean length."""
    returns = [e.episode_return for e in ended]
    return (f"{env}: {len(ended)} episodes with {policy} (greedy): mean return {number(sum(returns) / len(ended))} "
            f"(min {number(min(returns))}, max {number(max(returns))}), success "
            f"{sum(e.success for e in ended) / len(ended):.0%}, mean length "
            f"{sum(e.length for e in ended) / len(ended):.1f}; recorded in the store")


def commands_table(commands: Sequence[tuple[str, str]]) -> Table:
    """Returns the `help` table: each command's usage and summary."""
    table = Table(title="commands (Tab completes; Ctrl-D quits)", title_justify="left", show_header=False)
    for usage, summary in commands:
        table.add_row(usage, summary)
    return table
