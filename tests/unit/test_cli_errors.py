"""The CLI shows relearn's own errors as one line and lets a bug keep its traceback."""

from __future__ import annotations

import argparse

import pytest

from relearn import cli
from relearn.errors import RelearnError


def _run_with(handler, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """`relearn models list` with its handler replaced by `handler`."""
    real = cli.build_parser

    def parser() -> argparse.ArgumentParser:
        built = real()
        models = _subcommands(built)["models"]
        _subcommands(models)["list"].set_defaults(handler=handler)
        return built

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "build_parser", parser)
        code = cli.main(["models", "list"])
    return code, capsys.readouterr().err


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_our_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def fails(_args: argparse.Namespace) -> int:
        raise RelearnError("the broker is not running")

    code, err = _run_with(fails, capsys)
    assert code == 1 and err.strip() == "relearn: error: the broker is not running"


def test_the_registry_unreachable_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["models", "--registry-url", "http://127.0.0.1:1", "list"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("relearn: error: registry unreachable")
    assert "Traceback" not in err


def test_a_bug_keeps_its_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    class SomeLibraryError(Exception):  # named like an error, but not one of ours
        pass

    def buggy(_args: argparse.Namespace) -> int:
        raise SomeLibraryError("unexpected")

    with pytest.raises(SomeLibraryError):
        _run_with(buggy, capsys)
    with pytest.raises(KeyError):
        _run_with(lambda _args: {}["missing"], capsys)


def test_every_command_module_exists() -> None:
    """No 'area not built yet' is skipped silently: every listed module registers."""
    commands = set(_subcommands(cli.build_parser()))
    assert {"kafka", "topics", "streams", "trainer", "train", "registry", "models"} <= commands
    assert len(commands) == len(cli.COMMAND_MODULES)
