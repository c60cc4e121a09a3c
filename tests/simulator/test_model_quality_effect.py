"""Outcomes depend on the served model: a real ONNX model (torch -> onnxruntime) against v0.0 and noise."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from simulator.runner import DefaultScorer, Simulation, SimulationConfig
from simulator.world import FEATURE_COUNT, World
from streams.sequential_test import ArmSummary, Verdict, decide
from tests.simulator.conftest import ListPublisher, Served, SplitScorer

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's legacy exporter


def small_onnx_model(world: World, noise_strength: float = 0.0) -> bytes:
    """A 23-16-1 MLP fitted to the world's outcome scores in a second, exported to ONNX."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    indices = rng.integers(world.population, size=3_000)
    x = np.stack([world.features(int(i), rng) for i in indices]).astype(np.float32)
    y = np.asarray(world.probability(x), dtype=np.float32)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    network = nn.Sequential(nn.Linear(FEATURE_COUNT, 16), nn.ReLU(), nn.Linear(16, 1))
    optimizer = torch.optim.Adam(network.parameters(), lr=0.01)
    xt = torch.from_numpy((x - mean) / scale)
    yt = torch.from_numpy(y).reshape(-1, 1)
    for _ in range(300):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(network(xt), yt)
        loss.backward()
        optimizer.step()
    if noise_strength:
        with torch.no_grad():
            for parameter in network.parameters():
                noise = torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1))
                spread = parameter.std() if parameter.numel() > 1 else torch.tensor(1.0)
                parameter.mul_(1 - noise_strength).add_(noise * spread * noise_strength)

    class Normalized(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.from_numpy(mean))
            self.register_buffer("scale", torch.from_numpy(scale))
            self.body = network

        def forward(self, features: torch.Tensor) -> torch.Tensor:
            return self.body((features - self.mean) / self.scale)

    buffer = io.BytesIO()
    torch.onnx.export(
        Normalized().eval(),
        (torch.zeros(1, FEATURE_COUNT),),
        buffer,
        input_names=["features"],
        output_names=["score"],
        dynamic_axes={"features": {0: "batch"}, "score": {0: "batch"}},
        dynamo=False,
    )
    return buffer.getvalue()


class OnnxScorer:
    """One onnxruntime session serving one version, as the registry's ModelRouter does."""

    def __init__(self, onnx_bytes: bytes, version: str) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        self.version = version

    def predict(self, model_type: str, subject_id: str, features: Sequence[float]) -> Served:
        row = np.asarray([features], dtype=np.float32)
        (score,) = self.session.run(None, {"features": row})
        return Served(float(score.reshape(-1)[0]), self.version)


@pytest.fixture(scope="module")
def good_model(world: World) -> bytes:
    return small_onnx_model(world)


@pytest.fixture(scope="module")
def broken_model(world: World) -> bytes:
    return small_onnx_model(world, noise_strength=1.0)


def outcomes(scorer: object, world: World, tmp_path: Path, events: int = 1_500) -> list[dict]:
    import json

    publisher = ListPublisher()
    Simulation(
        SimulationConfig(events=events, seed=9, faults_dir=tmp_path),
        scorer,  # type: ignore[arg-type]
        publisher,
        clock=lambda: NOW,
        world=world,
    ).run()
    return [json.loads(value) for _, value in publisher.messages]


def positive_rate(events: list[dict]) -> float:
    return float(np.mean([e["positive_outcome"] for e in events]))


def test_a_good_model_raises_the_positive_rate_and_a_broken_one_does_not(
    world: World, tmp_path: Path, good_model: bytes, broken_model: bytes
) -> None:
    good = outcomes(OnnxScorer(good_model, "v1.0"), world, tmp_path)
    none = outcomes(DefaultScorer(), world, tmp_path)
    broken = outcomes(OnnxScorer(broken_model, "v1.1"), world, tmp_path)
    assert {e["model_version"] for e in good} == {"v1.0"}
    assert {e["model_version"] for e in none} == {"v0.0"}
    assert positive_rate(good) > positive_rate(none) + 0.15
    assert positive_rate(good) > positive_rate(broken) + 0.15
    good_error = np.mean([(e["prediction"] - e["outcome_score"]) ** 2 for e in good])
    broken_error = np.mean([(e["prediction"] - e["outcome_score"]) ** 2 for e in broken])
    assert broken_error > good_error


def test_the_ab_test_rolls_back_a_broken_candidate_on_simulated_traffic(
    world: World, tmp_path: Path, good_model: bytes, broken_model: bytes
) -> None:
    scorer = SplitScorer(
        OnnxScorer(good_model, "v1.0"), OnnxScorer(broken_model, "v1.1"), candidate_share=0.1
    )
    production, candidate = ArmSummary(), ArmSummary()
    verdict = Verdict.CONTINUE
    for event in outcomes(scorer, world, tmp_path, events=4_000):
        squared_error = (event["prediction"] - event["outcome_score"]) ** 2
        if event["model_version"] == "v1.1":
            candidate = candidate.add(event["positive_outcome"], squared_error)
        else:
            production = production.add(event["positive_outcome"], squared_error)
        verdict = decide(production, candidate, 0.05, min_samples=200).verdict
        if verdict is not Verdict.CONTINUE:
            break
    assert verdict is Verdict.ROLLBACK
