"""The Dockerfile's two images (no Docker engine here): compose builds targets that exist, torch only in one."""

from __future__ import annotations

import re

import yaml

from tests.deploy.environments import ROOT

STAGE = re.compile(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", re.MULTILINE | re.IGNORECASE)


def _stages() -> dict[str, str]:
    """Each stage's name and its text, in Dockerfile order."""
    text = (ROOT / "Dockerfile").read_text()
    marks = list(STAGE.finditer(text))
    return {
        mark.group(1): text[mark.start() : marks[i + 1].start() if i + 1 < len(marks) else None]
        for i, mark in enumerate(marks)
    }


def test_compose_builds_the_slim_image_for_all_but_the_trainer() -> None:
    stages = _stages()
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    targets = {name: s["build"]["target"] for name, s in services.items() if "build" in s}
    assert set(targets.values()) <= set(stages), targets
    assert targets["trainer"] == "trainer"
    assert {targets[name] for name in ("streams", "registry", "topics")} == {"slim"}


def test_only_the_trainer_image_installs_the_trainer_extra() -> None:
    stages = _stages()
    installs = {name: re.findall(r"pip install[^\n]*", text) for name, text in stages.items()}
    assert installs["build-slim"] and all(
        "[trainer]" not in line for line in installs["build-slim"]
    )
    assert any("'.[trainer]'" in line for line in installs["build-trainer"])
    assert "--from=build-slim" in stages["slim"] and "build-trainer" not in stages["slim"]
    assert "--from=build-trainer" in stages["trainer"]
