"""What `python start_training.py` runs: the orchestrator with a live status display."""

import sys
import time

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from aegis.orchestrator import AgentConfig, Orchestrator
from aegis.state import read_rl
from agent.gpt2_teacher import TeacherWeightsError
from data.store import StoreError
from hrm.cli import parse_args

console = Console(stderr=True)


def training_line(orch: Orchestrator) -> str:
    """Returns what training is doing: the running distillation's epoch, step, loss and held-out agreement (as the
    child records them in the store), or the RL rounds so far and the last round's returns and verdict."""
    if orch.child is not None:
        runs = orch.store.training_runs(limit=1, kind="imitation")
        last = runs[0].metrics[-1] if runs and runs[0].metrics else {}
        progress = (f"epoch {last['epoch']:g}/{runs[0].config.get('epochs', '?')}, step {last.get('step', '?')}, "
                    f"loss {last.get('lm_loss', float('nan')):.3f}, held-out agreement "
                    f"{last.get('eval_agreement', float('nan')):.1%}") if last else "loading the store"
        return f"distillation (pid {orch.child.pid}): {progress}"
    rl = read_rl(orch.store)
    if not rl.rounds:
        return "idle"
    last = rl.last
    returns = ", ".join(f"{k.removesuffix(' return')} {v:.2f}" for k, v in last.items() if k.endswith(" return"))
    return (f"RL round {rl.rounds} ({rl.accepted} accepted): last v{last.get('version')} "
            f"{'accepted' if last.get('accepted') else 'rejected'} ({returns}; KL {last.get('approx_kl', 0):.4f}, "
            f"entropy {last.get('entropy', 0):.3f}"
            + (f", value loss {last['value_loss']:.3g})" if "value_loss" in last else ")"))


def status_line(orch: Orchestrator) -> str:
    """Returns one dense line: phase, counts, acting policy, training, mean returns per env and policy."""
    returns = " | ".join(f"{env}/{policy} {sum(r) / len(r):.2f}" for (env, policy), r in sorted(orch.recent.items()))
    return (f"phase {orch.phase} | decisions {orch.decisions} | episodes {orch.run_episodes} | acting "
            f"{orch.runner.policy.name} | {time.time() - orch.started:.0f}s | {training_line(orch)} | "
            f"mean return (last 100) {returns}")


def status_view(orch: Orchestrator) -> Group:
    """Returns the live display: phase, counts, acting model, training progress, returns per env and policy."""
    head = Table.grid(padding=(0, 2))
    head.add_row("[bold]phase", str(orch.phase), "[bold]decisions", str(orch.decisions),
                 "[bold]episodes (this run)", str(orch.run_episodes))
    active = orch.store.active_version() if orch.run_decisions % 50 == 0 else None
    head.add_row("[bold]acting", orch.runner.policy.name, "[bold]active model",
                 f"v{orch.slot.version}" if orch.slot.version else "none (teacher)", "", "")
    head.add_row("[bold]training", Text(training_line(orch)), "", "", "", "")
    if active is not None and active.metrics:
        head.add_row("[bold]agreement", f"{active.metrics.get('agreement', float('nan')):.1%}", "", "", "", "")
    table = Table("env", "policy", "episodes", "mean return (last 100)", title="returns")
    for (env, policy), values in sorted(orch.recent.items()):
        table.add_row(env, policy, str(len(values)), f"{sum(values) / len(values):.3f}")
    return Group(head, table)


def main(argv: list[str] | None = None) -> int:
    """Entry point of start_training.py; returns the process exit code."""
    config = parse_args(AgentConfig, argv, prog="start_training.py")
    try:
        orch = Orchestrator(config)
    except (ValueError, StoreError, TeacherWeightsError) as e:
        print(f"start_training.py: {e}", file=sys.stderr)
        return 2
    orch.install_signal_handlers()
    console.print(f"Aegis on {config.db}: {', '.join(orch.env_names)} × {config.num_envs} envs, teacher "
                  f"{orch.teacher.name}, phase {orch.phase}. Ctrl-C stops after the current step.")
    if console.is_terminal:
        with Live(status_view(orch), console=console, refresh_per_second=4) as live:
            orch.run(on_step=lambda o: live.update(status_view(o)))
    else:
        last = {"phase": None, "decisions": -1, "at": 0.0}

        def report(o: Orchestrator) -> None:
            """One line on a phase change, every 50 steps, and every 30 s while the runner waits for training."""
            every = 50 * len(o.runner.slots)
            stepped = o.run_decisions != last["decisions"] and o.run_decisions % every == 0
            if o.phase != last["phase"] or stepped or time.time() - last["at"] > 30:
                last.update(phase=o.phase, decisions=o.run_decisions, at=time.time())
                console.print(status_line(o))

        orch.run(on_step=report)
    console.print(status_line(orch))
    console.print("stopped cleanly" if orch.stop_requested else "reached its bound")
    return 0
