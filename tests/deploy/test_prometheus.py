"""deploy/prometheus: promtool checks the scrape configs and the rules, and runs the rules' unit tests.

promtool comes from Debian's `prometheus` package (scripts/system-deps.sh installs it); a
machine without it fails here rather than skipping the alerts' only test.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.environments import ROOT

PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules" / "relearn.yml"
RULE_TESTS = PROMETHEUS / "tests" / "relearn_test.yml"
METRICS_DOC = ROOT / "docs" / "metrics.md"
# The alerts issue #18 asks for, each by the name the rules give it.
REQUIRED_ALERTS = {
    "RelearnStreamsConsumerLagGrowing",
    "RelearnStreamsDeadLetterRateHigh",
    "RelearnTrainerRejectionsInARow",
    "RelearnNoRetrainPastSchedule",
    "RelearnCanaryUndecided",
    "RelearnStreamsCommitsRefused",
}


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: apt-get install prometheus (scripts/system-deps.sh)"
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-kubernetes.yml"])
def test_scrape_config_is_valid_and_scrapes_the_three_services(config: str) -> None:
    done = run_promtool("check", "config", str(PROMETHEUS / config))
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = {
        job["job_name"]
        for job in yaml.safe_load((PROMETHEUS / config).read_text())["scrape_configs"]
    }
    assert jobs == {"relearn-streams", "relearn-registry", "relearn-trainer"}


def test_rules_are_valid_and_every_alert_explains_itself() -> None:
    done = run_promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    rules = [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]
    alerts = {rule["alert"]: rule for rule in rules}
    assert REQUIRED_ALERTS <= set(alerts)
    for name, rule in alerts.items():
        assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 80, name
        assert rule["labels"]["severity"] in {"page", "warn"}, name


def test_rules_use_only_metrics_the_catalogue_defines() -> None:
    documented = set(re.findall(r"`(relearn_[a-z_]+)`", METRICS_DOC.read_text()))
    used = set(re.findall(r"\b(relearn_(?:streams|trainer|registry)_[a-z_]+)", RULES.read_text()))
    assert used and used <= documented, used - documented


def test_every_alert_has_a_unit_test_and_they_pass() -> None:
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    alerts = {
        rule["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for rule in g["rules"]
    }
    assert alerts == tested, alerts ^ tested
    done = run_promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_unit_tests_catch_a_broken_rule(tmp_path: Path) -> None:
    """Without its new-samples condition the schedule alert fires for an idle type: a test fails."""
    broken = RULES.read_text().replace(
        "and\n          max by (model_type) (relearn_streams_new_samples) > 0\n", ""
    )
    assert broken != RULES.read_text()
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "relearn.yml").write_text(broken)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "relearn_test.yml").write_text(RULE_TESTS.read_text())
    done = run_promtool("test", "rules", str(tmp_path / "tests" / "relearn_test.yml"))
    assert done.returncode != 0
    assert "RelearnNoRetrainPastSchedule" in done.stdout + done.stderr
