"""The dashboard in a real headless chromium against a live registry and streams worker."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from registry.settings import RegistrySettings
from tests.conftest import free_port
from tests.dashboard.conftest import MT, TOKEN, Stack, start_registry, wait_refreshes
from tests.streams.harness import wait_until

pytestmark = pytest.mark.integration


def rows(page: Any) -> dict[str, dict[str, str]]:
    """The versions table as {version: {status, weight, test_loss, lineage, ...}}."""
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#versions tbody tr[data-version]')]
            .map(tr => [tr.dataset.version, {
                status: tr.dataset.status, weight: Number(tr.dataset.weight),
                production: tr.classList.contains('production'),
                ...Object.fromEntries([...tr.querySelectorAll('td[data-field]')]
                    .map(td => [td.dataset.field, td.textContent.trim()]))}]))"""
    )


def step_values(page: Any) -> dict[str, list[float]]:
    """Each version's weights in the traffic step chart, one value per registry event."""
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#traffic-chart path.step')]
            .map(p => [p.dataset.version, JSON.parse(p.dataset.values)]))"""
    )


def chart_points(page: Any, metric: str) -> dict[str, float]:
    return page.evaluate(
        """(metric) => Object.fromEntries([...document.querySelectorAll(
              `#performance .chart[data-metric="${metric}"] circle.point`)]
            .map(c => [c.dataset.version, Number(c.dataset.value)]))""",
        metric,
    )


def test_tables_and_charts_show_the_run(stack: Stack, page: Any) -> None:
    page.goto(stack.url + "/")
    wait_refreshes(page)
    # The performance and A/B panels come from streams through the registry's proxy.
    page.wait_for_selector("#performance circle.point")
    page.wait_for_selector("#abtest [data-arm=candidate]")

    table = rows(page)
    assert set(table) == {"v1.0", "v1.1"}
    assert table["v1.0"]["status"] == "production" and table["v1.0"]["production"]
    assert table["v1.0"]["weight"] == pytest.approx(0.9)
    assert table["v1.1"]["status"] == "staging" and table["v1.1"]["weight"] == pytest.approx(0.1)
    assert table["v1.1"]["test_loss"] == "0.0250"
    assert table["v1.1"]["parameters"] == "24"
    assert table["v1.1"]["baseline"] == "test_loss 0.0260"
    assert table["v1.1"]["created_at"].endswith("Z")
    assert table["v1.1"]["lineage"] == "p0: 0–80 · seed 2"
    topic = page.get_attribute(
        '#versions tr[data-version="v1.1"] td[data-field=lineage]', "data-topic"
    )
    assert topic == stack.topics.training_samples

    # One step per weight-changing registry event: v1.0 alone at 1.0, then 0.9 / 0.1.
    steps = step_values(page)
    assert steps["v1.0"][0] == 1.0 and steps["v1.0"][-1] == pytest.approx(0.9)
    assert steps["v1.1"][-1] == pytest.approx(0.1)

    # Daily performance: exactly what was sent, per version; production is the dashed baseline.
    for version, (count, rate, prediction) in stack.sent.items():
        assert chart_points(page, "sample_count")[version] == count
        assert chart_points(page, "positive_outcome_rate")[version] == pytest.approx(rate)
        assert chart_points(page, "avg_prediction")[version] == pytest.approx(prediction)
        assert chart_points(page, "avg_outcome_score")[version] == pytest.approx(rate)
    baseline = page.locator(
        '#performance .chart[data-metric="sample_count"] path[stroke-dasharray]'
    )
    assert baseline.get_attribute("data-version") == "v1.0"

    # The live A/B panel: per arm matured and waiting outcomes (the built-in 1-day window: all
    # still waiting, so no rate yet), the step, the remaining budget, the decision so far.
    arms = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#abtest tr[data-arm]')]
            .map(tr => [tr.dataset.version, {
              matured: Number(tr.querySelector('[data-field=matured]').textContent.replace(/,/g, '')),
              waiting: Number(tr.querySelector('[data-field=waiting]').textContent.replace(/,/g, '')),
              rate: tr.querySelector('[data-field=rate]').textContent}]))"""
    )
    assert arms["v1.0"] == {"matured": 0, "waiting": 40, "rate": "–"}
    assert arms["v1.1"] == {"matured": 0, "waiting": 20, "rate": "–"}
    assert page.inner_text("#abtest [data-field=step]") == "0.10"
    remaining = page.locator("#abtest [data-field=remaining]")
    assert remaining.get_attribute("data-outcomes") == "57600"
    assert float(remaining.get_attribute("data-seconds") or 0) == pytest.approx(
        14 * 86_400, rel=0.01
    )
    assert page.inner_text("#abtest [data-field=decision]") == "continue"

    # The operator's retrain command (streams holds its own while v1.1 is under test) and the
    # registry's rejection.
    page.wait_for_selector("#retrains tbody tr[data-command-id]")
    assert "manual" in page.inner_text("#retrains tbody")
    assert "sample_threshold" not in page.inner_text("#retrains tbody")
    assert page.locator("#rejections tbody tr[data-reason=sha256_mismatch]").count() == 1
    trainer = page.locator("#rejections tbody tr[data-reason=worse_than_production]")
    assert "test loss 12% worse than production" in trainer.inner_text()
    assert "trainer" in trainer.inner_text()
    # Rejections change no traffic (the trainer's carries no weights): they are no steps.
    history = page.evaluate(f"fetch('/dashboard/api/{MT}/history').then(r => r.json())")
    assert len(history["steps"]) == len(history["events"]) - 2
    assert len(steps["v1.0"]) == len(history["steps"])
    assert page.locator("#notices .notice").count() == 0


def test_a_rollback_through_the_api_appears_without_a_reload(stack: Stack, page: Any) -> None:
    page.goto(stack.url + "/")
    wait_refreshes(page)
    page.evaluate("window.__sameDocument = true")
    stack.client.rollback(MT, "v1.1")
    page.wait_for_selector('#versions tr[data-version="v1.1"][data-status="rolled_back"]')
    page.wait_for_selector('#events li[data-type="version_rolled_back"][data-version="v1.1"]')
    page.wait_for_function(
        """() => { const p = document.querySelector('#traffic-chart path.step[data-version="v1.1"]');
                   return p && JSON.parse(p.dataset.values).at(-1) === 0; }"""
    )
    assert page.evaluate("window.__sameDocument") is True
    table = rows(page)
    assert table["v1.0"]["weight"] == 1.0 and table["v1.1"]["weight"] == 0.0
    assert step_values(page)["v1.0"][-1] == 1.0


def test_operator_actions_from_the_page_change_the_registry(stack: Stack, page: Any) -> None:
    if stack.client.version(MT, "v1.1").status != "rolled_back":
        stack.client.rollback(MT, "v1.1")  # this test also runs alone
    stack.deploy(seed=4)
    wait_until(lambda: stack.version_count() == 3, 30, "v1.2 registered")
    page.goto(stack.url + "/")
    page.wait_for_selector('#versions tr[data-version="v1.2"][data-status="staging"]')

    # A wrong token is refused visibly and changes nothing.
    page.fill("#token", "not-the-token")
    page.click('#versions tr[data-version="v1.2"] button[data-act=promote]')
    page.wait_for_selector("#action-result.error")
    assert "403" in page.inner_text("#action-result")
    assert stack.client.version(MT, "v1.2").status == "staging"

    # A ramp step from the form, then a full promotion from the row's button.
    page.fill("#token", TOKEN)
    page.select_option("#action-version", "v1.2")
    page.fill("#promote-weight", "0.5")
    page.click("#promote")
    page.wait_for_selector("#action-result.ok")
    assert stack.client.models()[0].weights == {"v1.0": 0.5, "v1.2": 0.5}
    page.fill("#weights", "v1.0=0.7, v1.2=0.3")
    page.click("#set-weights")
    page.wait_for_selector('#versions tr[data-version="v1.2"][data-weight="0.3"]')
    assert stack.client.models()[0].weights == {"v1.0": 0.7, "v1.2": 0.3}
    page.fill("#promote-weight", "")
    page.click('#versions tr[data-version="v1.2"] button[data-act=promote]')
    page.wait_for_selector('#versions tr[data-version="v1.2"][data-status="production"]')
    assert stack.client.version(MT, "v1.2").status == "production"
    assert stack.client.version(MT, "v1.0").status == "archived"

    # A retrain request from the page reaches retrain-commands (the history lists it).
    page.click("#retrain")
    page.wait_for_selector("#action-result.ok")
    page.wait_for_selector("#retrains tbody tr:has-text('manual')")


def test_unreachable_streams_and_kafka_show_notices(page: Any, tmp_path: Any) -> None:
    settings = RegistrySettings(
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",  # nothing listens there
        topic_prefix=f"t{uuid.uuid4().hex[:10]}-",
        state_dir=tmp_path,
        api_token=TOKEN,
        streams_url=f"http://127.0.0.1:{free_port()}",
    )
    registry = start_registry(settings)
    try:
        page.goto(registry.url + "/")
        page.wait_for_selector("#notice-streams")
        page.wait_for_selector("#notice-kafka", timeout=20_000)
        assert "Streams is unreachable" in page.inner_text("#notice-streams")
        assert "Kafka is unreachable" in page.inner_text("#notice-kafka")
        assert "unavailable" in page.inner_text("#performance-notice")
        assert "no version registered yet" in page.inner_text("#versions tbody")
        proxied = page.evaluate(
            f"fetch('/dashboard/api/streams/abtest/{MT}').then(r => r.json().then(b => [r.status, b]))"
        )
        assert proxied[0] == 502 and proxied[1]["code"] == "streams_unreachable"
        assert json.dumps(proxied[1]).count("does not answer") == 1
    finally:
        registry.stop()
