"""`relearn models list|show|promote|rollback|weights|retrain`: the operator's view, via the API."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry.client import RegistryClient
    from registry.views import ModelSummary, VersionOut


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser("models", help="model versions and traffic, via the registry")
    models.add_argument("--registry-url", default=None, help="default RELEARN_REGISTRY_URL")
    actions = models.add_subparsers(dest="action", required=True)

    actions.add_parser("list", help="model types, production, staging, weights").set_defaults(
        handler=_list
    )
    show = actions.add_parser("show", help="the versions of a model type, or one version")
    show.add_argument("model_type")
    show.add_argument("version", nargs="?")
    show.set_defaults(handler=_show)

    promote = actions.add_parser("promote", help="promote a version (or a ramp step)")
    promote.add_argument("model_type")
    promote.add_argument("version")
    promote.add_argument(
        "--weight",
        type=float,
        default=None,
        help="ramp: give the version this share and production the rest (default: 1.0)",
    )
    promote.set_defaults(handler=_promote)

    rollback = actions.add_parser("rollback", help="roll a version back; production takes over")
    rollback.add_argument("model_type")
    rollback.add_argument("version")
    rollback.set_defaults(handler=_rollback)

    weights = actions.add_parser("weights", help="show, or set with VERSION=WEIGHT pairs")
    weights.add_argument("model_type")
    weights.add_argument("pairs", nargs="*", metavar="VERSION=WEIGHT")
    weights.add_argument(
        "--force",
        action="store_true",
        help="override the one-candidate rule and production's share (refused with 409 otherwise)",
    )
    weights.set_defaults(handler=_weights)

    retrain = actions.add_parser("retrain", help="publish a manual retrain command")
    retrain.add_argument("model_type")
    retrain.set_defaults(handler=_retrain)


def _client(args: argparse.Namespace) -> RegistryClient:
    import logging

    from registry.client import RegistryClient, RegistryClientSettings

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise here

    settings = RegistryClientSettings()
    return RegistryClient(args.registry_url or settings.registry_url, token=settings.token())


def _console() -> Any:
    import sys

    from rich.console import Console

    # A pipe or a file gets whole lines; a terminal gets its own width.
    return Console() if sys.stdout.isatty() else Console(width=200)


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")  # wrap, never truncate a version or status
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    return table


def _fmt_weights(weights: dict[str, float]) -> str:
    return ", ".join(f"{v}={w:g}" for v, w in weights.items()) or "-"


def _print_model(model: ModelSummary) -> None:
    _console().print(_models_table([model]))


def _models_table(models: list[ModelSummary]) -> Any:
    rows = []
    for model in models:
        production = model.production
        rows.append(
            [
                model.model_type,
                f"{production.version} ({production.weight:g})" if production else "-",
                ", ".join(f"{s.version} ({s.weight:g})" for s in model.staging) or "-",
                _fmt_weights(model.weights),
            ]
        )
    return _table("models", ["model type", "production", "staging", "weights"], rows)


def _list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _console().print(_models_table(client.models()))
    return 0


def _show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.version:
            info = client.version(args.model_type, args.version)
            rows = [[key, value] for key, value in info.model_dump(mode="json").items()]
            _console().print(_table(f"{args.model_type} {args.version}", ["field", "value"], rows))
            return 0
        versions = client.versions(args.model_type)
    rows = [_version_row(v) for v in versions]
    columns = ["version", "status", "weight", "test_loss", "baseline", "sha256", "created"]
    _console().print(_table(args.model_type, columns, rows))
    return 0


def _version_row(v: VersionOut) -> list[Any]:
    return [
        v.version,
        v.status,
        f"{v.weight:g}",
        _metric(v.metrics, "test_loss"),
        _metric(v.baseline_metrics, "test_loss"),
        v.sha256[:12],
        v.created_at.isoformat()[:19].replace("T", " "),
    ]


def _metric(metrics: dict[str, Any] | None, key: str) -> str:
    value = (metrics or {}).get(key)
    return f"{value:.5g}" if isinstance(value, int | float) else "-"


def _promote(args: argparse.Namespace) -> int:
    with _client(args) as client:
        weights = None
        if args.weight is not None and args.weight < 1.0:
            production = next(
                (m.production for m in client.models() if m.model_type == args.model_type),
                None,
            )
            if production is None:
                raise SystemExit(f"relearn: {args.model_type} has no production version")
            weights = {args.version: args.weight, production.version: 1.0 - args.weight}
        _print_model(client.promote(args.model_type, args.version, weights).model)
    return 0


def _rollback(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _print_model(client.rollback(args.model_type, args.version).model)
    return 0


def _weights(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if not args.pairs:
            model = next((m for m in client.models() if m.model_type == args.model_type), None)
            if model is None:
                raise SystemExit(f"relearn: unknown model type {args.model_type}")
            _print_model(model)
            return 0
        weights: dict[str, float] = {}
        for pair in args.pairs:
            version, _, weight = pair.partition("=")
            try:
                weights[version] = float(weight)
            except ValueError:
                raise SystemExit(f"relearn: expected VERSION=WEIGHT, got {pair!r}") from None
        _print_model(client.set_weights(args.model_type, weights, args.force).model)
    return 0


def _retrain(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.retrain(args.model_type)
    _console().print(f"retrain requested for {result.model_type}: {result.command_id}")
    return 0
