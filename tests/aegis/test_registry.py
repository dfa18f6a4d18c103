"""Model versions: atomic activation, rollback, and a hot-swap that keeps the old policy when loading fails."""

import pytest

from aegis.registry import PolicySlot, RegistryError, activate, rollback
from agent.policy import RandomPolicy
from data.store import ExperienceStore


@pytest.fixture
def store(tmp_path):
    return ExperienceStore(tmp_path / "aegis.db")


def test_activation_keeps_exactly_one_active_version(store, make_checkpoint):
    v1 = store.add_model_version("imitation", make_checkpoint("v1"), {"agreement": 0.8})
    v2 = store.add_model_version("imitation", make_checkpoint("v2"), {"agreement": 0.9}, parent_id=v1)
    assert store.active_version() is None
    activate(store, v1)
    activate(store, v2)
    statuses = {v.id: v.status for v in store.model_versions()}
    assert statuses == {v1: "retired", v2: "active"}
    assert store.model_version(v2).replaced_id == v1 and store.model_version(v2).parent_id == v1


def test_rollback_reactivates_the_previous_version(store, make_checkpoint):
    versions = [store.add_model_version("imitation", make_checkpoint(f"v{i}"), {}) for i in range(3)]
    for v in versions:
        activate(store, v)
    assert rollback(store).id == versions[1]
    assert rollback(store).id == versions[0]
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        rollback(store)
    assert store.active_version().id == versions[0]


def test_rollback_with_nothing_active_says_so(store):
    with pytest.raises(RegistryError, match="no model is active"):
        rollback(store)


def test_a_corrupt_checkpoint_cannot_be_activated(store, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    version = store.add_model_version("imitation", bad, {})
    with pytest.raises(RegistryError, match=f"version {version} cannot be activated"):
        activate(store, version)
    assert store.active_version() is None


def test_slot_swaps_after_a_canary_and_keeps_the_old_policy_when_loading_fails(store, make_checkpoint, canary,
                                                                                  tmp_path):
    teacher = RandomPolicy(seed=0)
    slot = PolicySlot(store, fallback=teacher, canary=canary, device="cpu")
    assert not slot.sync() and slot.policy is teacher

    good = store.add_model_version("imitation", make_checkpoint("good"), {})
    activate(store, good)
    assert slot.sync() and slot.policy.name == f"hrm:v{good}" and slot.version == good
    serving = slot.policy

    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"truncated")
    bad = store.add_model_version("imitation", broken, {})
    store.activate_version(bad)  # as if the file were damaged after activation
    assert not slot.sync()
    assert slot.policy is serving and slot.version == good
    assert store.events(kind="swap_failed")[0].data == {"version": bad}
    assert not slot.sync()  # the broken version is not retried every step

    rollback(store)
    assert not slot.sync() and slot.policy is serving  # back on the version it already serves


def test_export_by_version_resolves_the_registry_and_unknown_versions_fail_in_one_line(store, make_checkpoint,
                                                                                        tmp_path, capsys):
    from aegis.export import main

    db = str(tmp_path / "aegis.db")
    version = store.add_model_version("imitation", make_checkpoint("v1"), {})
    assert main(["--db", db, "--version", "99", "--out", str(tmp_path / "triton")]) == 2
    assert "there is no model version 99" in capsys.readouterr().err
    assert main(["--db", db, "--version", str(version), "--format", "torchscript", "--out",
                 str(tmp_path / "triton")]) == 0
    assert (tmp_path / "triton" / "hrm" / "1" / "model.pt").is_file()
