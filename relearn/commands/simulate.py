"""`relearn simulate`: synthetic outcome events with a known ground truth (see simulator/scenarios.py)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SCENARIOS = ("steady", "good-candidate", "bad-candidate", "aa")


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1]")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="synthetic outcome events with a known ground truth",
        description="Subjects from a fixed distribution, a hidden ground truth, scores served "
        "by the registry (ModelRouter), an app that contacts the best-scored 30%; "
        "outcome events to Kafka keyed by subject_id.",
        epilog="scenarios: steady and aa inject nothing; bad-candidate writes "
        "<RELEARN_FAULTS_DIR>/<type>.degrade = 1.0 once a real version serves, so the next "
        "model trained is near-random (to be rolled back); good-candidate writes 0.6 when no "
        "version serves yet, so v1.0 is weak and the next normal candidate is promoted. "
        "Fault files are written only with RELEARN_FAULT_INJECTION=true, and only a trainer "
        "started with RELEARN_FAULT_INJECTION=true and the same RELEARN_FAULTS_DIR acts on them.",
    )
    parser.add_argument("--scenario", choices=SCENARIOS, default="steady")
    parser.add_argument("--rate", type=float, default=200.0, help="messages/s (0 = unlimited)")
    parser.add_argument("--events", type=int, default=1000, help="messages to send")
    parser.add_argument("--seed", type=int, default=1, help="seed of the event stream")
    parser.add_argument(
        "--model-type",
        action="append",
        dest="model_types",
        help="model type(s) to simulate; repeat for several (default calling_score)",
    )
    parser.add_argument("--ground-truth", type=Path, help="write what was sent as JSON here")
    parser.add_argument("--invalid-fraction", type=_fraction, default=0.0)
    parser.add_argument("--duplicate-fraction", type=_fraction, default=0.0)
    parser.add_argument(
        "--offline",
        action="store_true",
        help="do not ask the registry: every score is the default (v0.0)",
    )
    parser.add_argument("--world-seed", type=int, help="seed of the hidden world (default fixed)")
    parser.add_argument("--bad-strength", type=float, default=0.0, help="bad-candidate fault")
    parser.add_argument("--good-strength", type=float, default=0.0, help="good-candidate fault")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from simulator.delays import OutcomeDelays
    from simulator.ground_truth import GroundTruth
    from simulator.publisher import KafkaPublisher
    from simulator.runner import DefaultScorer, Scorer, Simulation, SimulationConfig
    from simulator.scenarios import Scenario
    from simulator.settings import SimulatorSettings
    from simulator.world import WORLD_SEED

    settings = SimulatorSettings()
    faults_dir = _faults_dir(Scenario(args.scenario), settings)
    config = SimulationConfig(
        scenario=Scenario(args.scenario),
        events=args.events,
        rate=args.rate,
        seed=args.seed,
        model_types=tuple(args.model_types or ["calling_score"]),
        invalid_fraction=args.invalid_fraction,
        duplicate_fraction=args.duplicate_fraction,
        faults_dir=faults_dir,
        world_seed=WORLD_SEED if args.world_seed is None else args.world_seed,
        bad_strength=args.bad_strength,
        good_strength=args.good_strength,
    )
    catalog = settings.model_types()
    unknown = [t for t in config.model_types if t not in catalog]
    if unknown:
        print(
            f"relearn: error: unknown model type(s) {unknown}; known: {catalog.names()}",
            file=sys.stderr,
        )
        return 2
    if settings.simulate_outcome_delays:  # the hostile world: outcomes reported late
        delays = OutcomeDelays.of(
            catalog, config.model_types, settings.simulate_positive_delay_fraction
        )
        config = dataclasses.replace(config, outcome_delays=delays)
    router = None
    scorer: Scorer
    if args.offline:
        scorer = DefaultScorer()
    else:
        from registry.client import ModelRouter

        router = ModelRouter(settings.registry_url)
        scorer = router
    publisher = KafkaPublisher(settings.bootstrap_servers, settings.topics.outcome_events)
    simulation = Simulation(config, scorer, publisher)
    log.info(
        "simulating %s: %d messages at %s/s to %s (seed %d)",
        config.scenario.value,
        config.events,
        config.rate or "unlimited",
        settings.topics.outcome_events,
        config.seed,
    )

    console = Console(stderr=True)
    show = not args.no_progress and console.is_terminal
    progress = Progress(
        TextColumn("[bold]{task.fields[scenario]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[served]}"),
        console=console,
        disable=not show,
    )
    task = progress.add_task(
        "simulate", total=config.events, scenario=config.scenario.value, served=""
    )

    def report(truth: GroundTruth) -> None:
        served = "  ".join(f"{k} {v}" for k, v in sorted(truth.served_visits.items()))
        progress.update(task, completed=truth.messages_produced, served=served)

    truth = None
    try:
        with progress:
            truth = simulation.run(progress=report)
    finally:
        truth = simulation.truth
        if router is not None:
            router.close()
        if args.ground_truth:
            truth.write(args.ground_truth)

    table = Table(title=f"relearn simulate --scenario {config.scenario.value}: what was sent")
    for column in ("model type", "version", "day", "events", "pos. rate", "avg pred.", "MSE"):
        table.add_column(column)
    for model_type, versions in truth.as_dict()["valid"].items():
        for version, days in versions.items():
            for day, row in days.items():
                table.add_row(
                    model_type,
                    version,
                    day,
                    str(row["events"]),
                    f"{row['positive_outcome_rate']:.3f}",
                    f"{row['avg_prediction']:.3f}",
                    f"{row['mean_squared_error']:.4f}",
                )
    out = Console()
    Console(width=max(out.width, 100)).print(table)
    print(
        f"messages {truth.messages_produced}: valid {truth.valid_events}, "
        f"invalid {truth.invalid_events} {dict(truth.invalid_by_reason)}, "
        f"duplicates {truth.duplicates}, delivery failures {truth.delivery_failures}"
        + (f", outcomes unreported {truth.outcomes_unreported}" if config.outcome_delays else "")
    )
    for fault in truth.faults_written:
        print(f"fault written: {fault['path']} = {fault['strength']}")
    return 0 if truth.delivery_failures == 0 else 1


def _faults_dir(scenario: Any, settings: Any) -> Path | None:
    """Where the scenario may write its fault file, said on stderr; None when nothing will act on it.

    A default trainer ignores fault files, so writing one would only leave a trap for a later
    fault-enabled trainer: the file is written only when this environment enables fault injection
    too (the variables `relearn up` and `relearn demo` pass to every service alike).
    """
    from simulator.scenarios import Scenario

    if scenario not in (Scenario.BAD_CANDIDATE, Scenario.GOOD_CANDIDATE):
        return None
    if not settings.fault_injection:
        print(
            f"relearn simulate: scenario {scenario.value} injects its fault through the trainer, "
            "and a trainer acts on fault files only when started with "
            "RELEARN_FAULT_INJECTION=true. It is not set here, so no fault file is written and "
            "no model will be degraded: the events still flow (as in steady). For the full "
            "scenario, set RELEARN_FAULT_INJECTION=true (and the same RELEARN_FAULTS_DIR) for "
            "both the trainer and simulate, on a registry of their own.",
            file=sys.stderr,
        )
        return None
    faults_dir = settings.faults_dir.resolve()
    print(
        f"relearn simulate: scenario {scenario.value} will write its fault file to {faults_dir}; "
        "only a trainer started with RELEARN_FAULT_INJECTION=true and "
        f"RELEARN_FAULTS_DIR={faults_dir} acts on it.",
        file=sys.stderr,
    )
    return faults_dir
