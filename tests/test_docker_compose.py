"""docker-compose.yml cannot run here (no Docker engine), so check it against the CLI and the settings."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import yaml
from pydantic_settings import BaseSettings

from relearn.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bus", "streams", "training", "registry", "simulator", "relearn")


def settings_env_names() -> set[str]:
    """Every environment variable name some relearn settings class reads."""
    for package in PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, f"{package}."):
            if info.name.rsplit(".", 1)[-1] in {"settings", "config"}:
                importlib.import_module(info.name)
    names: set[str] = set()
    stack = list(BaseSettings.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] not in PACKAGES:
            continue
        prefix = cls.model_config.get("env_prefix", "")
        for name, field in cls.model_fields.items():
            names.add(f"{prefix}{name}".upper())
            alias = field.validation_alias
            choices = getattr(alias, "choices", None) or ([alias] if isinstance(alias, str) else [])
            names.update(str(choice).upper() for choice in choices)
    return names


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_service_command_is_a_relearn_subcommand() -> None:
    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    services = compose()["services"]
    ours = {name: s for name, s in services.items() if "build" in s}
    assert {"streams", "trainer", "registry"} <= set(ours)
    for name, service in ours.items():
        assert service["command"][0] in subcommands, f"{name}: {service['command']}"
        parser.parse_args(service["command"])  # parses without error


def test_every_relearn_variable_is_read_by_a_settings_class() -> None:
    known = settings_env_names()
    assert "KAFKA_BOOTSTRAP_SERVERS" in known
    for name, service in compose()["services"].items():
        for variable in service.get("environment") or {}:
            if variable.startswith(("RELEARN_", "KAFKA_BOOTSTRAP")) and "build" in service:
                assert variable in known, f"service {name} sets {variable}, which nothing reads"


def test_the_kafka_service_runs_kraft_from_the_official_image() -> None:
    kafka = compose()["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_the_api_token_is_required_with_no_default() -> None:
    """`${VAR:?message}`: compose refuses to start when RELEARN_API_TOKEN is unset or empty."""
    token = compose()["x-relearn-env"]["RELEARN_API_TOKEN"]
    assert re.fullmatch(r"\$\{RELEARN_API_TOKEN:\?[^}$]+\}", token), token
    assert "change-me" not in (ROOT / "docker-compose.yml").read_text()


def test_every_service_has_a_restart_policy() -> None:
    services = compose()["services"]
    for name, service in services.items():
        assert service.get("restart") in {"unless-stopped", "on-failure", "always"}, name
    # the one-shot topics job must not be restarted after it succeeded
    assert services["topics"]["restart"] == "on-failure"
    for name in ("kafka", "streams", "trainer", "registry"):
        assert services[name]["restart"] == "unless-stopped", name
