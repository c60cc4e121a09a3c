"""Benchmark: what relearn adds around a team's training script vs the script alone, same data file.

Run:
    .venv/bin/python bench/byo_trainer.py [--sizes 10000 100000] [--repeats 3] [--model gbm]

For each size: synthetic calling_score samples; the pipeline (`TrainingPipeline.build` for the
example script of examples/, then the artifact store and the model-deployed event's JSON) runs
with a production model so the gate really scores; then the script alone runs on the very file
the pipeline gave it (the same train + validation rows, written the same way). Interleaved,
medians. The Kafka read of the window and the one publish are not in it (see "training").
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts.events import to_json  # noqa: E402
from contracts.model_types import Loss, ModelTypeSpec, Target  # noqa: E402
from contracts.trainer_config import ScriptTrainer  # noqa: E402
from training.artifacts import LocalArtifactStore  # noqa: E402
from training.dataset import Dataset, DatasetBuilder, split_dataset  # noqa: E402
from training.pipeline import PipelineConfig, TrainingPipeline, deployment_event  # noqa: E402
from training.production import FixedProductionSource, ProductionModel  # noqa: E402
from training.synthetic import synthetic_samples  # noqa: E402
from training.trainers.datafile import write_json  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ml"


def dataset(spec: ModelTypeSpec, count: int) -> Dataset:
    builder = DatasetBuilder(spec)
    for start in range(0, count, 10_000):
        for s in synthetic_samples(min(10_000, count - start), "calling_score", seed=start):
            builder.add(
                s["event_id"], s["features"], s["outcome_score"], s["positive_outcome"],
                s["occurred_at"],
            )  # fmt: skip
    return builder.build()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", choices=["gbm", "linear"], default="gbm")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    argv = ("{python}", "train_calling_score_model.py", "--data", "{data}", "--output", "{output}",
            "--model", args.model)  # fmt: skip
    spec = ModelTypeSpec(
        name="calling_score_gbm",
        feature_count=23,
        target=Target.OUTCOME_SCORE,
        loss=Loss.MSE,
        trainer=ScriptTrainer.model_validate(
            {"kind": "script", "argv": argv, "workdir": str(EXAMPLE)}
        ),
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-byo-") as tmp:
        folder = Path(tmp)
        store = LocalArtifactStore(folder / "artifacts")
        for size in args.sizes:
            data = dataset(spec, size)
            config = PipelineConfig()
            # production: a first run of the same script, so the gate scores the test rows
            first = TrainingPipeline(None, config, FixedProductionSource()).build(spec, data)  # type: ignore[arg-type]
            pipeline = TrainingPipeline(
                None,  # type: ignore[arg-type]  # build() needs no catalog
                config,
                FixedProductionSource(ProductionModel("v1.0", first.proven.onnx)),
            )
            split = split_dataset(data, config.hyper.seed, 0.1, 0.1)
            seen = Dataset(
                np.concatenate([split.train.features, split.validation.features]),
                np.concatenate([split.train.targets, split.validation.targets]),
                details={
                    k: np.concatenate([v, split.validation.details[k]])  # type: ignore[index]
                    for k, v in split.train.details.items()  # type: ignore[union-attr]
                },
            )
            data_file = folder / f"samples-{size}.json"
            write_json(data_file, seen, spec)
            alone_argv = [sys.executable, "train_calling_score_model.py", "--data", str(data_file),
                          "--output", str(folder / "alone.onnx"), "--model", args.model]  # fmt: skip
            totals, scripts, alones, phases = [], [], [], []
            for _ in range(args.repeats):
                started = time.perf_counter()
                candidate = pipeline.build(spec, data)
                stored = store.put(spec.name, candidate.proven.onnx)
                to_json(deployment_event(candidate, stored, None, None))
                total = time.perf_counter() - started
                assert candidate.metrics["gate"] == "passed", candidate.metrics["gate_detail"]
                totals.append(total)
                scripts.append(candidate.timings["script"])
                phases.append(candidate.timings)

                started = time.perf_counter()
                subprocess.run(alone_argv, cwd=EXAMPLE, check=True, capture_output=True)
                alones.append(time.perf_counter() - started)
            median = statistics.median
            row = {
                "samples": size,
                "alone": median(alones),
                "total": median(totals),
                "script_in_pipeline": median(scripts),
                "write_data": median(p["write_data"] for p in phases),
                "prove": median(p["prove"] for p in phases),
                "gate": median(p["gate"] for p in phases),
            }
            row["added"] = row["total"] - row["script_in_pipeline"]
            rows.append(row)
            print(
                f"{size}: alone {alones} pipeline {totals} script in pipeline {scripts}", flush=True
            )

    print()
    print("| samples | script alone | pipeline (command -> event) | added around the script | "
          "write data | prove + losses | gate | total vs alone |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['samples']:,} | {r['alone']:.2f} s | {r['total']:.2f} s | "
            f"{r['added']:.2f} s ({r['added'] / r['alone']:.0%}) | {r['write_data']:.2f} s | "
            f"{r['prove']:.2f} s | {r['gate'] * 1000:.0f} ms | "
            f"{r['total'] / r['alone'] - 1:+.0%} |"
        )


if __name__ == "__main__":
    main()
