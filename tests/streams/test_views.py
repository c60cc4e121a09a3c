"""The web views over followed changelogs: a count is never shown ahead of its performance rows.

The model-type state and the daily performance rows of one batch are records on two changelog
topics, and a follower reads two topics in no set order. These tests hand the records of real
batches (`processing.handle_sample` over the worker's tables) to the views in the order a
follower may read them: the state first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi.testclient import TestClient

from contracts.model_types import ModelTypeCatalog
from streams import processing, tables
from streams.views import TableViews
from streams.web import create_app
from tests.streams.test_processing import RULES, forwarded_sample

MT = "calling_score"
MODEL_TYPES, PERFORMANCE = tables.MODEL_TYPES, tables.PERFORMANCE
CHANGELOGS = {name: tables.changelog_topic("app", name) for name in tables.SMALL_TABLES}


def batch(
    states: tables.ChangelogTable[Any],
    performance: tables.ChangelogTable[Any],
    offsets: range,
) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
    """Count the samples at `offsets` of source partition 0; the batch's changelog records
    (model-type state, daily performance), as the worker writes them."""
    for offset in offsets:
        sample = forwarded_sample(
            event_id=f"e{offset}",
            model_version=("v1.0", "v1.1")[offset % 2],
            occurred_at=f"2026-11-{24 + offset % 3}T12:00:00Z",
        )
        processing.handle_sample(sample, 0, offset, states, performance, {}, RULES, 0.0)
    return list(states.take_changed()), list(performance.take_changed())


@dataclass
class Readout:
    """A worker as the web views see it (`streams.web.WorkerReadout`), without the worker."""

    views: TableViews
    sample_threshold: int = RULES.retrain_sample_threshold
    catalog: ModelTypeCatalog = field(default_factory=ModelTypeCatalog)

    def knows(self, model_type: str) -> bool:
        return model_type in self.catalog

    def health(self) -> dict[str, Any]:
        return {"tables_caught_up": self.views.caught_up}

    def readiness(self) -> dict[str, str]:
        return {"tables": "ok" if self.views.caught_up else "reading"}


def web_over(views: TableViews) -> TestClient:
    views._tail.caught_up = True  # the records below are all there is
    return TestClient(create_app(Readout(views)))


def read(views: TableViews, records: list[tuple[bytes, bytes]], name: str) -> None:
    for key, value in records:
        views.apply(CHANGELOGS[name], key, value)


def counted(web: TestClient) -> int:
    answer = web.get(f"/samples/{MT}")
    assert answer.status_code == 200
    view = answer.json()
    return int(view["retrain_commands"] * RULES.retrain_sample_threshold + view["new_samples"])


def in_rows(web: TestClient) -> int:
    answer = web.get(f"/performance/{MT}", params={"days": "10000"})
    assert answer.status_code == 200
    return sum(row["sample_count"] for row in answer.json())


def test_a_count_read_before_its_performance_rows_is_not_shown_until_the_rows_are() -> None:
    states, performance = (
        tables.ChangelogTable.of(MODEL_TYPES),
        tables.ChangelogTable.of(PERFORMANCE),
    )
    views = TableViews("unused:9092", CHANGELOGS)
    web = web_over(views)
    first_states, first_rows = batch(states, performance, range(0, 150))
    read(views, first_rows, tables.PERFORMANCE)
    read(views, first_states, tables.MODEL_TYPES)
    assert (counted(web), in_rows(web)) == (150, 150)

    second_states, second_rows = batch(states, performance, range(150, 260))
    read(views, second_states, tables.MODEL_TYPES)  # the state's topic read first
    # what a user reading /samples and then /performance sees: never a count the rows lack
    assert counted(web) <= in_rows(web)
    assert (counted(web), in_rows(web)) == (150, 150)
    assert views.held_back == [MT]

    read(views, second_rows[:1], tables.PERFORMANCE)  # one row of the batch is not all
    assert counted(web) == 150 and views.held_back == [MT]
    read(views, second_rows[1:], tables.PERFORMANCE)
    assert (counted(web), in_rows(web)) == (260, 260)
    assert views.held_back == []


def test_of_several_states_read_ahead_the_newest_the_rows_cover_is_shown() -> None:
    states, performance = (
        tables.ChangelogTable.of(MODEL_TYPES),
        tables.ChangelogTable.of(PERFORMANCE),
    )
    views = TableViews("unused:9092", CHANGELOGS)
    web = web_over(views)
    batches = [batch(states, performance, range(start, start + 40)) for start in (0, 40, 80)]
    for state_records, _ in batches:
        read(views, state_records, tables.MODEL_TYPES)
    assert MT not in views.table(tables.MODEL_TYPES)
    read(views, batches[0][1] + batches[1][1], tables.PERFORMANCE)
    assert counted(web) == in_rows(web) == 80
    read(views, batches[2][1], tables.PERFORMANCE)
    assert counted(web) == in_rows(web) == 120 and views.held_back == []


def test_a_state_written_before_samples_were_counted_in_it_is_shown_and_then_learns_them() -> None:
    """A changelog written by an older worker: its states say nothing about their rows."""
    states, performance = (
        tables.ChangelogTable.of(MODEL_TYPES),
        tables.ChangelogTable.of(PERFORMANCE),
    )
    batch(states, performance, range(0, 30))
    old: dict[str, Any] = states[MT].to_dict()
    del old["samples"]
    views = TableViews("unused:9092", CHANGELOGS)
    web = web_over(views)
    views.apply(CHANGELOGS[tables.MODEL_TYPES], MT.encode(), orjson.dumps(old))
    assert counted(web) == 30  # shown as it is, as before

    restored = tables.ChangelogTable.of(MODEL_TYPES)
    restored.restore(MT.encode(), orjson.dumps(old))
    batch(restored, performance, range(30, 31))
    assert processing.ModelTypeState.load(restored[MT]).samples == 31  # from its rows


def test_the_routes_answer_as_before_and_are_in_the_openapi_document() -> None:
    states = tables.ChangelogTable.of(MODEL_TYPES)
    performance = tables.ChangelogTable.of(PERFORMANCE)
    views = TableViews("unused:9092", CHANGELOGS)
    web = web_over(views)
    state_records, rows = batch(states, performance, range(0, 5))
    read(views, rows, tables.PERFORMANCE)
    read(views, state_records, tables.MODEL_TYPES)

    assert web.get(f"/performance/{MT}", params={"days": "x"}).json() == {
        "detail": "days must be a whole number"
    }
    assert web.get(f"/performance/{MT}", params={"days": "x"}).status_code == 400
    unknown = web.get("/samples/nope")
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "unknown model type 'nope'"})
    assert web.get("/nowhere").json() == {"detail": "not found"}
    assert web.get("/abtest/{MT}/more").status_code == 404
    no_test = {"model_type": MT, "running": False, "missing_served_at": 0}
    assert web.get(f"/abtest/{MT}").json() == no_test
    assert web.get("/rejections").json() == {}
    assert web.get("/livez").json() == {"status": "ok"}
    assert web.get("/readyz").json() == {"ready": True, "checks": {"tables": "ok"}}
    assert web.get("/metrics").status_code == 404  # none given: metrics are off
    paths = set(web.get("/openapi.json").json()["paths"])
    assert {
        "/performance/{model_type}",
        "/samples/{model_type}",
        "/abtest/{model_type}",
        "/rejections",
        "/healthz",
        "/livez",
        "/readyz",
        "/metrics",
    } <= paths

    views._tail.caught_up = False  # the tables are being read again: views wait, probes say so
    assert web.get(f"/samples/{MT}").status_code == 503
    not_ready = web.get("/readyz")
    assert (not_ready.status_code, not_ready.json()["ready"]) == (503, False)
