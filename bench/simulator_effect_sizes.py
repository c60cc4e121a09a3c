"""How much the served model moves the simulated outcomes, and how fast the A/B test then decides.

Uses the trainer's own code (training.dataset, training.fit, training.faults.degrade) on the
simulator's events, as the demo would: v1.0 trained on 1,000 v0.0 events; a bad candidate is
a normally trained model degraded at strength 1.0; the good-candidate story's production is
degraded at 0.6 and its challenger trained normally on the 2,000 events seen so far. Models are
served from torch (the ONNX export reproduces them within the trainer's parity tolerance).

    .venv/bin/python bench/simulator_effect_sizes.py [--events 5000] [--ab-runs 10]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import torch

from contracts.model_types import ModelTypeCatalog
from registry.routing import route
from simulator.runner import DefaultScorer, Simulation, SimulationConfig
from simulator.world import World
from streams.sequential_test import ArmSummary, Verdict, decide
from training.dataset import DatasetBuilder, split_dataset
from training.faults import degrade
from training.fit import fit
from training.hyperparameters import Hyperparameters
from training.network import ScoringNetwork

MODEL_TYPE = "calling_score"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Served:
    score: float
    version: str


class TorchScorer:
    def __init__(self, network: ScoringNetwork, version: str) -> None:
        self.network = network.eval()
        self.version = version

    def predict(self, model_type: str, subject_id: str, features: Sequence[float]) -> Served:
        with torch.no_grad():
            row = torch.tensor([list(features)], dtype=torch.float32)
            return Served(float(self.network(row).reshape(-1)[0]), self.version)


class RoutedScorer:
    """Production and candidate behind the registry's real bucket routing."""

    def __init__(self, scorers: dict[str, TorchScorer], weights: dict[str, float]) -> None:
        self.scorers, self.weights = scorers, weights

    def predict(self, model_type: str, subject_id: str, features: Sequence[float]) -> Served:
        version = route(self.weights, model_type, subject_id)
        assert version is not None
        return self.scorers[version].predict(model_type, subject_id, features)


class Collector:
    failures = 0

    def __init__(self, on_event=None) -> None:  # noqa: ANN001
        self.events: list[dict] = []
        self.on_event = on_event

    def publish(self, key: str, value: bytes) -> None:
        event = json.loads(value)
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def flush(self, timeout: float) -> int:
        return 0


class Decided(Exception):
    pass


def simulate(scorer: object, world: World, events: int, seed: int, on_event=None) -> list[dict]:  # noqa: ANN001
    collector = Collector(on_event)
    with TemporaryDirectory() as faults:
        simulation = Simulation(
            SimulationConfig(events=events, seed=seed, faults_dir=Path(faults)),
            scorer,  # type: ignore[arg-type]
            collector,
            clock=lambda: NOW,
            world=world,
        )
        try:
            simulation.run()
        except Decided:
            pass
    return collector.events


def train(events: list[dict], seed: int = 42) -> ScoringNetwork:
    spec = ModelTypeCatalog().get(MODEL_TYPE)
    assert spec is not None
    builder = DatasetBuilder(spec)
    for e in events:
        builder.add(e["event_id"], e["features"], e["outcome_score"], e["positive_outcome"])
    hyper = Hyperparameters(seed=seed)
    split = split_dataset(builder.build(), hyper.seed)
    return fit(spec, split, hyper).network


def degraded(network: ScoringNetwork, strength: float) -> ScoringNetwork:
    copied = copy.deepcopy(network)
    degrade(copied, strength, seed=42)
    return copied


def summary(events: list[dict]) -> tuple[float, float, float]:
    positives = [e["positive_outcome"] for e in events]
    rate = float(np.mean(positives))
    half = 1.96 * math.sqrt(rate * (1 - rate) / len(events))
    mse = float(np.mean([(e["prediction"] - e["outcome_score"]) ** 2 for e in events]))
    return rate, half, mse


def ab_run(
    world: World, production: TorchScorer, candidate: TorchScorer, seed: int, max_events: int
) -> tuple[Verdict, str, int, int]:
    arms = {production.version: ArmSummary(), candidate.version: ArmSummary()}
    result: list = []

    def on_event(event: dict) -> None:
        error = (event["prediction"] - event["outcome_score"]) ** 2
        version = event["model_version"]
        arms[version] = arms[version].add(event["positive_outcome"], error)
        decision = decide(arms[production.version], arms[candidate.version], 0.05, 200)
        if decision.verdict is not Verdict.CONTINUE:
            result.append(decision)
            raise Decided

    scorer = RoutedScorer(
        {production.version: production, candidate.version: candidate},
        {production.version: 0.9, candidate.version: 0.1},
    )
    events = simulate(scorer, world, max_events, seed, on_event)
    if result:
        d = result[0]
        return d.verdict, d.metric, len(events), d.candidate_samples
    return Verdict.CONTINUE, "-", len(events), arms[candidate.version].samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--ab-runs", type=int, default=10)
    parser.add_argument("--ab-max-events", type=int, default=20_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    world = World()

    v00_data = simulate(DefaultScorer(), world, 1_000, seed=1)
    good = train(v00_data)
    mild = degraded(good, 0.6)
    models = {
        "v0.0 (no model, default score 0.5)": DefaultScorer(),
        "v1.0 trained on 1,000 v0.0 events": TorchScorer(good, "v1.0"),
        "same, fault 0.25": TorchScorer(degraded(good, 0.25), "v1.0"),
        "same, fault 0.5": TorchScorer(degraded(good, 0.5), "v1.0"),
        "same, fault 0.6 (good-candidate's production)": TorchScorer(mild, "v1.0"),
        "same, fault 0.75": TorchScorer(degraded(good, 0.75), "v1.0"),
        "same, fault 1.0 (bad-candidate)": TorchScorer(degraded(good, 1.0), "v1.1"),
    }
    mild_era = simulate(TorchScorer(mild, "v1.0"), world, 1_000, seed=2)
    challenger = train(v00_data + mild_era)
    models["v1.1 trained on v0.0 + fault-0.6 era (2,000)"] = TorchScorer(challenger, "v1.1")
    good_era = simulate(TorchScorer(good, "v1.0"), world, 1_000, seed=3)
    retrained = train(v00_data + good_era)
    models["v1.1 trained on v0.0 + v1.0 era (2,000)"] = TorchScorer(retrained, "v1.1")

    print(
        f"calling_score, {args.events} events per model, world seed fixed, stream seed 11; "
        "the app contacts the top 30% by served score (+5% exploration).\n"
    )
    print("| served model | positive outcome rate (95% CI) | mean squared error |")
    print("|---|---|---|")
    for label, scorer in models.items():
        rate, half, mse = summary(simulate(scorer, world, args.events, seed=11))
        print(f"| {label} | {rate:.3f} ± {half:.3f} | {mse:.4f} |")

    print(
        f"\nA/B at weight 0.1 (registry bucket routing), alpha 0.05, min 200 per arm, a look "
        f"after every event, {args.ab_runs} stream seeds, at most {args.ab_max_events} events:\n"
    )
    print(
        "| production vs candidate | verdicts | median events to decision "
        "| median candidate samples |"
    )
    print("|---|---|---|---|")
    pairs = (
        (
            "v1.0 vs fault-1.0 candidate (bad-candidate)",
            TorchScorer(good, "v1.0"),
            TorchScorer(degraded(good, 1.0), "v1.1"),
        ),
        (
            "fault-0.6 v1.0 vs normal v1.1 (good-candidate)",
            TorchScorer(mild, "v1.0"),
            TorchScorer(challenger, "v1.1"),
        ),
        (
            "v1.0 vs normally retrained v1.1 (aa)",
            TorchScorer(good, "v1.0"),
            TorchScorer(retrained, "v1.1"),
        ),
    )
    for label, production, candidate in pairs:
        results = [
            ab_run(world, production, candidate, 100 + s, args.ab_max_events)
            for s in range(args.ab_runs)
        ]
        verdicts: dict[str, int] = {}
        for verdict, metric, _, _ in results:
            key = verdict.value + (f" ({metric})" if verdict is not Verdict.CONTINUE else "")
            verdicts[key] = verdicts.get(key, 0) + 1
        decided = [r for r in results if r[0] is not Verdict.CONTINUE]
        events = f"{statistics.median(r[2] for r in decided):.0f}" if decided else "-"
        cands = f"{statistics.median(r[3] for r in decided):.0f}" if decided else "-"
        print(f"| {label} | {verdicts} | {events} | {cands} |")
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
