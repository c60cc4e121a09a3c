"""The dashboard's bounded history (pure): steps, rejections, retrains, replays skipped."""

from __future__ import annotations

from registry.dashboard.history import DashboardHistory

MT = "calling_score"


def event(type_: str, version: str | None, weights: dict[str, float], **extra: object) -> dict:
    return {
        "event_id": f"e-{type_}-{version}",
        "type": type_,
        "model_type": MT,
        "version": version,
        "weights": weights,
        "reason": "why",
        "occurred_at": "2026-11-27T00:00:00Z",
        **extra,
    }


def test_weight_changes_become_steps_and_rejections_do_not() -> None:
    history = DashboardHistory()
    history.apply_registry_event(event("version_registered", "v1.0", {"v1.0": 1.0}))
    history.apply_registry_event(event("version_registered", "v1.1", {"v1.0": 0.9, "v1.1": 0.1}))
    # The trainer's rejection carries no weight map; it must not look like "all traffic gone".
    history.apply_registry_event(
        event(
            "deployment_rejected",
            None,
            {},
            details={
                "command_id": "c1",
                "reason": "gate_failed",
                "detail": "worse than production",
            },
        )
    )
    history.apply_registry_event(
        event(
            "artifact_rejected",
            None,
            {"v1.0": 0.9, "v1.1": 0.1},
            details={"deployment_id": "d1", "detail": "digest differs"},
            reason="sha256_mismatch",
        )
    )
    snapshot = history.snapshot(MT)
    assert [s["weights"] for s in snapshot["steps"]] == [{"v1.0": 1.0}, {"v1.0": 0.9, "v1.1": 0.1}]
    assert len(snapshot["events"]) == 4
    assert [(r["source"], r["reason"], r["detail"]) for r in snapshot["rejections"]] == [
        ("trainer", "why", "worse than production"),
        ("registry", "sha256_mismatch", "digest differs"),
    ]


def test_replayed_offsets_are_skipped_and_lists_are_bounded() -> None:
    history = DashboardHistory(max_items=3)
    source = ("retrain-commands", 0)
    for offset in range(5):
        command = {"command_id": f"c{offset}", "model_type": MT, "reason": "manual"}
        assert history.apply_retrain_command(command, source, offset)
    assert not history.apply_retrain_command({"command_id": "c4", "model_type": MT}, source, 4)
    assert not history.apply_retrain_command({"command_id": "c1", "model_type": MT}, source, 1)
    commands = history.snapshot(MT)["retrain_commands"]
    assert [c["command_id"] for c in commands] == ["c2", "c3", "c4"]
    # Another partition has its own offsets.
    assert history.apply_retrain_command(
        {"command_id": "x", "model_type": MT}, ("retrain-commands", 1), 0
    )


def test_unusable_values_and_too_many_model_types_are_ignored() -> None:
    history = DashboardHistory(max_model_types=1)
    assert not history.apply_registry_event({"type": "traffic_changed"})
    assert not history.apply_retrain_command({"reason": "manual"})
    assert history.apply_retrain_command({"model_type": "a"})
    assert not history.apply_retrain_command({"model_type": "b"})
    assert history.model_types() == ["a"]
    assert history.snapshot("unknown")["steps"] == []


def test_weights_that_are_not_a_map_do_not_stop_the_history() -> None:
    """`"weights": 5` raised TypeError in the follower thread, which then stopped for good."""
    history = DashboardHistory()
    history.apply_registry_event(event("traffic_changed", "v1.1", 5))  # type: ignore[arg-type]
    history.apply_registry_event(event("version_registered", "v1.2", {"v1.2": 1.0}))
    assert [e["version"] for e in history.snapshot(MT)["events"]][-1] == "v1.2"
