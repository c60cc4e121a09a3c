"""Simulation figures for the sequential A/B test: A/A false alarms, power, samples to decision.

Every run looks at the test after EVERY outcome event (continuous monitoring, as streams/
does), with the candidate at weight 0.1, alpha 0.05 and 200 samples per arm before any
decision. Side by side on the same streams: a naive z-test looked at after every event, and
the same z-test looked at once at the horizon. Prints Markdown tables for BENCHMARKS.md.

    .venv/bin/python bench/sequential_simulation.py [--runs 1000] [--seed 1]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

from simulator.sequential_runs import AbScenario, RunOutcome, run_pair
from streams.sequential_test import RATE_MIXING_SD, Verdict

ALPHA = 0.05
MIN_SAMPLES = 200


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def share(outcomes: list[RunOutcome], verdict: Verdict, metric: str | None = None) -> str:
    k = sum(o.verdict is verdict and (metric is None or o.metric == metric) for o in outcomes)
    low, high = wilson(k, len(outcomes))
    return f"{k / len(outcomes):.3f} [{low:.3f}, {high:.3f}]"


def median_samples(outcomes: list[RunOutcome], verdict: Verdict) -> str:
    decided = sorted(o.candidate_samples for o in outcomes if o.verdict is verdict)
    if not decided:
        return "-"
    p90 = decided[min(len(decided) - 1, int(0.9 * len(decided)))]
    return f"{statistics.median(decided):.0f} (p90 {p90})"


def runs(
    rng: np.random.Generator, scenario: AbScenario, n: int, tau: float = RATE_MIXING_SD
) -> list[tuple[RunOutcome, RunOutcome, RunOutcome]]:
    return [run_pair(rng, scenario, ALPHA, MIN_SAMPLES, rate_mixing_sd=tau) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--sweep-runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()

    print(
        f"alpha {ALPHA}, min samples {MIN_SAMPLES} per arm, candidate weight 0.1, "
        f"horizon 5,000 candidate samples (~50,000 events), a look after every event, "
        f"{args.runs} runs per row, seed {args.seed}. Rates with Wilson 95% intervals.\n"
    )

    aa = runs(rng, AbScenario(0.5, 0.5), args.runs)
    print("### A/A (50% vs 50%, same squared-error distribution)\n")
    print(
        "| rule | false rollback | of which on rate | of which on squared error | false promote |"
    )
    print("|---|---|---|---|---|")
    names = (
        "mSPRT, look after every event",
        "naive z-test, look after every event",
        "naive z-test, one look at the horizon",
    )
    for index, name in enumerate(names):
        column = [o[index] for o in aa]
        print(
            f"| {name} | {share(column, Verdict.ROLLBACK)} "
            f"| {share(column, Verdict.ROLLBACK, 'positive_outcome_rate')} "
            f"| {share(column, Verdict.ROLLBACK, 'squared_error')} "
            f"| {share(column, Verdict.PROMOTE)} |"
        )

    print("\n### Power and samples to decision (mSPRT, a look after every event)\n")
    print(
        "| truth | decided as expected within 5,000 candidate samples | wrong decision "
        "| median candidate samples to decision (p90) |"
    )
    print("|---|---|---|---|")
    cases = (
        ("rate 50% -> 45% (bad)", AbScenario(0.5, 0.45), Verdict.ROLLBACK),
        ("rate 50% -> 47% (bad)", AbScenario(0.5, 0.47), Verdict.ROLLBACK),
        ("rate 50% -> 40% (bad)", AbScenario(0.5, 0.40), Verdict.ROLLBACK),
        ("rate 50% -> 55% (good)", AbScenario(0.5, 0.55), Verdict.PROMOTE),
        (
            "rate 30% -> 60% (the demo's good vs degraded gap)",
            AbScenario(0.3, 0.6),
            Verdict.PROMOTE,
        ),
        (
            "equal rate, error sd 0.2 -> 0.25 (bad)",
            AbScenario(0.5, 0.5, candidate_error_sd=0.25),
            Verdict.ROLLBACK,
        ),
    )
    for label, scenario, expected in cases:
        column = [o[0] for o in runs(rng, scenario, args.runs)]
        wrong = Verdict.PROMOTE if expected is Verdict.ROLLBACK else Verdict.ROLLBACK
        print(
            f"| {label} | {share(column, expected)} | {share(column, wrong)} "
            f"| {median_samples(column, expected)} |"
        )

    print(
        f"\n### Mixing sd tau on the rate ({args.sweep_runs} runs per cell): "
        "median candidate samples to rollback, share rolled back within 5,000\n"
    )
    taus = (0.01, 0.02, 0.05, 0.1, 0.2)
    print("| effect | " + " | ".join(f"tau {t}" for t in taus) + " |")
    print("|---|" + "---|" * len(taus))
    for effect in (0.02, 0.03, 0.05, 0.10, 0.20):
        cells = []
        for tau in taus:
            column = [o[0] for o in runs(rng, AbScenario(0.5, 0.5 - effect), args.sweep_runs, tau)]
            rolled = [o.candidate_samples for o in column if o.verdict is Verdict.ROLLBACK]
            median = f"{statistics.median(rolled):.0f}" if rolled else "-"
            cells.append(f"{median} ({len(rolled) / len(column):.0%})")
        print(f"| -{effect * 100:.0f} points | " + " | ".join(cells) + " |")
    aa_cells = []
    for tau in taus:
        column = [o[0] for o in runs(rng, AbScenario(0.5, 0.5), args.sweep_runs, tau)]
        aa_cells.append(share(column, Verdict.ROLLBACK).split(" ")[0])
    print("| A/A false rollback | " + " | ".join(aa_cells) + " |")
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
