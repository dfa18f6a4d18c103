"""The orchestrator's persistent state, typed: what the agent writes to the store and what `status` reads back.

One module writes and reads every key, so the REPL shows exactly what the orchestrator wrote (a process reading the
store while the agent runs sees the last committed value).
"""

import os
import socket
from dataclasses import asdict, dataclass, field, fields

from data.store import ExperienceStore, TrainingRunRow

RL_KEY = "rl"


@dataclass
class RlProgress:
    """How far the improve phase has gone."""

    rounds: int = 0
    """RL rounds finished (each made one candidate version)."""
    accepted: int = 0
    """Candidates champion/challenger promoted."""
    episodes: int = 0
    """Episodes the rounds played and trained on."""
    decisions: int = 0
    """Decisions the rounds played and trained on."""
    since_episode: int = 0
    """The id of the newest episode when the active version took over (its own episodes come after)."""
    learner: int | None = None
    """The version the next round trains from when it is not the active one: the last rejected candidate, while fewer
    than --rl-learner-patience were rejected in a row."""
    rejected_in_row: int = 0
    """Candidates rejected since the last promotion (or the learner's last restart from the active version)."""
    last: dict = field(default_factory=dict)
    """The last round's report: returns per env before and after, verdict, losses, KL, entropy."""

    def settle_learner(self, candidate: int, accepted: bool, patience: int) -> bool:
        """Records a round's verdict: a promoted candidate is the active version (and the learner); a rejected one is
        the next learner until `patience` were rejected in a row. Returns True when that happened and the learner
        restarts from the active version."""
        self.rejected_in_row = 0 if accepted else self.rejected_in_row + 1
        self.learner = None if accepted else candidate
        if self.rejected_in_row < patience:
            return False
        self.learner, self.rejected_in_row = None, 0
        return True


def read_rl(store: ExperienceStore) -> RlProgress:
    """Returns the stored RL progress (zeros before the first round)."""
    stored = store.get_state(RL_KEY) or {}
    known = {f.name for f in fields(RlProgress)}
    return RlProgress(**{k: v for k, v in stored.items() if k in known})


def write_rl(store: ExperienceStore, progress: RlProgress) -> None:
    """Stores the RL progress."""
    store.set_state(RL_KEY, asdict(progress))


def this_process() -> dict:
    """Returns what identifies the running process in a training run's config: its pid and host."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def process_gone(run: TrainingRunRow) -> bool:
    """True when a "running" training run's process is known to have died (same host, pid no longer alive): the run
    was interrupted (killed, or the machine restarted) and may be resumed."""
    pid, host = run.config.get("pid"), run.config.get("host")
    if run.status != "running" or not isinstance(pid, int) or host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False
