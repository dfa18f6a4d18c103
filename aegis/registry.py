"""The model registry and the hot-swappable policy slot.

Versions live in the experience store (`model_versions`): candidate → active (one atomic update) → retired, or
rejected. The store's active version is the cross-process signal: a running agent's `PolicySlot.sync()` sees it
change, loads the new model, asks it for a canary decision, and only then swaps it in. A model that fails to load
or to answer leaves the old policy serving. With no active version the fallback policy (the teacher) serves.
"""

from dataclasses import dataclass, field

from agent.hrm_policy import HrmPolicy
from agent.policy import Observation, Policy
from data.store import ExperienceStore, StoreError, VersionRow


class RegistryError(RuntimeError):
    """A registry action is impossible; the message says why and what to do."""


def activate(store: ExperienceStore, version_id: int) -> VersionRow:
    """Makes a version active after checking that its checkpoint loads; returns it."""
    version = store.model_version(version_id)
    if version is None:
        raise RegistryError(f"there is no model version {version_id}; `models` lists them")
    try:
        HrmPolicy.load(version.checkpoint_path, version.id, device="cpu")
    except Exception as e:  # any failure to load means it must not become active
        raise RegistryError(f"version {version_id} cannot be activated: {e}") from e
    return store.activate_version(version_id)


def rollback(store: ExperienceStore) -> VersionRow:
    """Re-activates the version the active one replaced; returns it."""
    current = store.active_version()
    if current is None:
        raise RegistryError("no model is active, so there is nothing to roll back")
    if current.replaced_id is None:
        raise RegistryError(f"version {current.id} replaced no other version; nothing to roll back to")
    try:
        return store.activate_version(current.replaced_id, rollback=True)
    except StoreError as e:
        raise RegistryError(str(e)) from e


@dataclass
class PolicySlot:
    """The runner's policy: the active HRM version when there is one, otherwise the fallback (the teacher)."""

    store: ExperienceStore
    fallback: Policy
    canary: Observation
    """A fixed observation every new model must answer before it serves."""
    device: str | None = None
    precision: str = "auto"
    """The HRM's autocast dtype (`HrmPolicy`)."""
    policy: Policy = field(init=False)
    version: int | None = field(init=False, default=None)
    failed: set[int] = field(init=False, default_factory=set)
    """Versions that failed to load or answer; not retried until another version is activated."""

    def __post_init__(self):
        self.policy = self.fallback

    def sync(self) -> bool:
        """Follows the store's active version; returns True if the serving policy changed."""
        active = self.store.active_version()
        wanted = None if active is None else active.id
        if wanted == self.version or wanted in self.failed:
            return False
        if active is None:
            self.policy, self.version = self.fallback, None
            self.store.log_event("swap", f"no active model: {self.fallback.name} acts again")
            return True
        try:
            candidate = HrmPolicy.load(active.checkpoint_path, active.id, device=self.device,
                                       precision=self.precision)
            [decision] = candidate.decide([self.canary], greedy=True)
            if not 0 <= decision.action < len(self.canary.legal_actions):
                raise ValueError(f"canary answer {decision.action} is not a legal action index")
        except Exception as e:  # keep serving the old policy whatever went wrong
            self.store.log_event("swap_failed", f"version {active.id} failed to load; {self.policy.name} keeps "
                                 f"serving ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
                                 version=active.id)
            self.failed.add(active.id)
            return False
        previous = self.policy.name
        self.policy, self.version = candidate, active.id
        self.store.log_event("swap", f"{previous} → {candidate.name}", version=active.id)
        return True
