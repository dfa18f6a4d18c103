"""The orchestrator's persistent state, typed: what the agent writes to the store and what `status` reads back.

One module writes and reads every key, so the REPL shows exactly what the orchestrator wrote (a process reading the
store while the agent runs sees the last committed value).
"""

from dataclasses import asdict, dataclass, field, fields

from data.store import ExperienceStore

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
    last: dict = field(default_factory=dict)
    """The last round's report: returns per env before and after, verdict, losses, KL, entropy."""


def read_rl(store: ExperienceStore) -> RlProgress:
    """Returns the stored RL progress (zeros before the first round)."""
    stored = store.get_state(RL_KEY) or {}
    known = {f.name for f in fields(RlProgress)}
    return RlProgress(**{k: v for k, v in stored.items() if k in known})


def write_rl(store: ExperienceStore, progress: RlProgress) -> None:
    """Stores the RL progress."""
    store.set_state(RL_KEY, asdict(progress))
