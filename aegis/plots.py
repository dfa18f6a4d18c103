"""Learning-curve pictures from the experience store (matplotlib, headless): what the agent learned, and when.

Top row, one panel per env: episode return over the decisions made so far (a rolling mean with a ±1 standard
deviation band), coloured by who acted (the teacher, the distilled HRM, the HRM after RL), with the swap to the HRM
and each RL promotion / rejection marked, and the exact optimum dashed where it is known. Bottom row: distillation
(training loss and held-out agreement per epoch) and RL rounds (each env's champion → challenger return on the judging
seeds, filled when the challenger was accepted).
"""

from datetime import datetime
from pathlib import Path

import numpy as np

from agent.envs import make_env
from data.store import EpisodeRow, ExperienceStore

WINDOW = 50  # episodes in the rolling mean
COLOURS = {"teacher": "tab:gray", "distilled HRM": "tab:blue", "HRM after RL": "tab:green"}
MARKS = {"swap": ("tab:blue", "--"), "promote": ("tab:green", ":"), "reject": ("tab:red", ":")}
MARK_LABELS = {"swap": "swap", "promote": "RL promoted", "reject": "RL rejected"}


def _who(episode: EpisodeRow, kinds: dict[int, str]) -> str:
    if episode.model_version is None:
        return "teacher"
    return "HRM after RL" if kinds.get(episode.model_version) == "rl" else "distilled HRM"


def _rolling(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns the rolling mean and standard deviation over the last `window` values (fewer at the start)."""
    means, stds = np.empty(len(values)), np.empty(len(values))
    for i in range(len(values)):
        part = values[max(0, i - window + 1):i + 1]
        means[i], stds[i] = part.mean(), part.std()
    return means, stds


def _decisions_at(times: list[datetime], ended: list[datetime], lengths: np.ndarray) -> list[float]:
    """Returns, per time, the decisions made by the episodes that had ended by then (the x of an event)."""
    order = np.argsort(np.array([t.timestamp() for t in ended]))
    stamps = np.array([ended[i].timestamp() for i in order])
    cumulative = np.cumsum(lengths[order])
    return [float(cumulative[i - 1]) if (i := int(np.searchsorted(stamps, t.timestamp(), side="right"))) else 0.0
            for t in times]


def learning_curves(store: ExperienceStore, envs: list[str] | None = None):
    """Returns the matplotlib Figure of the store's learning curves (see the module docstring)."""
    import matplotlib

    matplotlib.use("Agg")  # headless: files only
    import matplotlib.pyplot as plt

    episodes = sorted(store.episodes(finished=True), key=lambda e: e.id)
    envs = envs or sorted({e.env for e in episodes}) or ["(no episodes)"]
    kinds = {v.id: v.kind for v in store.model_versions()}
    # the swap to the HRM, and promotions / rejections of RL versions (a distilled version's activation is a swap)
    events = [e for e in store.events(limit=100_000) if e.kind == "swap"
              or (e.kind in MARKS and kinds.get(e.data.get("version")) == "rl")]
    figure, axes = plt.subplots(2, max(2, len(envs)), figsize=(6.5 * max(2, len(envs)), 8.5), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=False):
        _returns_panel(ax, env, [e for e in episodes if e.env == env], kinds, events)
    for ax in axes[0][len(envs):]:
        ax.set_visible(False)
    _distillation_panel(axes[1][0], store)
    _rl_panel(axes[1][1], store)
    for ax in axes[1][2:]:
        ax.set_visible(False)
    figure.suptitle("Aegis: returns, distillation and RL rounds")
    figure.tight_layout()
    return figure


def _returns_panel(ax, env: str, episodes: list[EpisodeRow], kinds: dict[int, str], events) -> None:
    ax.set_title(f"{env}: episode return (rolling mean of {WINDOW}, ±1 sd)")
    ax.set_xlabel("decisions")
    ax.set_ylabel("return")
    if not episodes:
        ax.text(0.5, 0.5, "no finished episodes", ha="center", transform=ax.transAxes)
        return
    lengths = np.array([e.length for e in episodes], dtype=float)
    x = np.cumsum(lengths)
    who = np.array([_who(e, kinds) for e in episodes])
    for name, colour in COLOURS.items():
        mask = who == name
        if mask.any():
            mean, std = _rolling(np.array([e.episode_return for e in episodes])[mask], WINDOW)
            ax.plot(x[mask], mean, color=colour, label=name)
            ax.fill_between(x[mask], mean - std, mean + std, color=colour, alpha=0.2)
    ended = [e.ended_at for e in episodes]
    for kind, (colour, style) in MARKS.items():
        at = _decisions_at([e.time for e in events if e.kind == kind], ended, lengths)
        for i, position in enumerate(at):
            ax.axvline(position, color=colour, linestyle=style, linewidth=1, label=None if i else MARK_LABELS[kind])
    optimum = make_env(env).optimal_return()
    if optimum is not None:
        ax.axhline(optimum, color="black", linestyle="--", linewidth=1, label=f"optimum {optimum:.3g}")
    ax.legend(loc="lower right", fontsize="small")


def _distillation_panel(ax, store: ExperienceStore) -> None:
    ax.set_title("distillation: training loss and held-out agreement per epoch")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    agreement_ax = ax.twinx()
    agreement_ax.set_ylabel("held-out agreement")
    agreement_ax.set_ylim(0, 1)
    runs = [r for r in store.training_runs(kind="imitation") if r.metrics]
    for run in sorted(runs, key=lambda r: r.id):
        epochs = [m.get("epoch", i + 1) for i, m in enumerate(run.metrics)]
        ax.plot(epochs, [m.get("lm_loss", np.nan) for m in run.metrics], color="tab:orange",
                label=f"run {run.id} loss")
        agreement_ax.plot(epochs, [m.get("eval_agreement", np.nan) for m in run.metrics], color="tab:blue",
                          label=f"run {run.id} agreement")
    if not runs:
        ax.text(0.5, 0.5, "no distillation yet", ha="center", transform=ax.transAxes)
    lines = ax.get_legend_handles_labels()
    more = agreement_ax.get_legend_handles_labels()
    if lines[0] or more[0]:
        ax.legend(lines[0] + more[0], lines[1] + more[1], loc="center right", fontsize="small")


def _rl_panel(ax, store: ExperienceStore) -> None:
    ax.set_title("RL rounds: champion → challenger return on the judging seeds")
    ax.set_xlabel("round")
    ax.set_ylabel("return")
    runs = sorted((r for r in store.training_runs(kind="rl") if r.metrics), key=lambda r: r.id)
    if not runs:
        ax.text(0.5, 0.5, "no RL round yet", ha="center", transform=ax.transAxes)
        return
    envs = sorted({k.split("/")[0] for r in runs for k in r.metrics[-1] if k.endswith("/challenger")})
    for env, colour in zip(envs, ("tab:blue", "tab:purple", "tab:brown", "tab:olive"), strict=False):
        rounds = np.arange(len(runs))
        champion = [r.metrics[-1].get(f"{env}/champion", np.nan) for r in runs]
        challenger = [r.metrics[-1].get(f"{env}/challenger", np.nan) for r in runs]
        accepted = np.array([bool(r.metrics[-1].get("accepted")) for r in runs])
        ax.plot(rounds, champion, color=colour, linestyle="--", label=f"{env} champion")
        ax.scatter(rounds[accepted], np.array(challenger)[accepted], color=colour, label=f"{env} accepted")
        ax.scatter(rounds[~accepted], np.array(challenger)[~accepted], facecolors="none", edgecolors=colour,
                   label=f"{env} rejected")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="best", fontsize="small")


def save_learning_curves(store: ExperienceStore, path: str | Path, envs: list[str] | None = None) -> Path:
    """Writes the learning curves as a PNG at `path`; returns the path."""
    import matplotlib.pyplot as plt

    figure = learning_curves(store, envs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path
