"""Fault injection for the demo and the tests, off unless enabled: the hooks port, its file adapter.

Production wiring passes no hooks (None) to the pipeline and the worker, so a default trainer has
no code path that reads `<faults_dir>/<type>.degrade` or `<faults_dir>/crash.<point>`.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import torch

from registry.views import VersionOut
from training.errors import FaultInjectionRefusedError, RegistryUnavailableError
from training.network import ScoringNetwork

log = logging.getLogger(__name__)

# The metrics flag every model of a fault-enabled trainer carries (event and registry).
FAULT_INJECTION_FLAG = "fault_injection"


class FaultHooks(Protocol):
    """What a fault-enabled trainer asks at two moments; production wiring has none (None)."""

    def degrade_strength(self, model_type: str) -> float | None:
        """Once per gated model: how strongly to spoil it, or None."""
        ...

    def crash_point(self, point: str) -> None:
        """At `after_artifact` and `before_publish`: may SIGKILL this process."""
        ...


class FileFaults:
    """The hooks as files in one directory, which `relearn demo`, the tests and benches write."""

    def __init__(self, faults_dir: Path) -> None:
        self.faults_dir = faults_dir

    def degrade_strength(self, model_type: str) -> float | None:
        return take_fault(self.faults_dir, model_type)

    def crash_point(self, point: str) -> None:
        crash_point(self.faults_dir, point)


def fault_path(faults_dir: Path, model_type: str) -> Path:
    return faults_dir / f"{model_type}.degrade"


def take_fault(faults_dir: Path, model_type: str) -> float | None:
    """Read and delete the fault file: its strength in (0, 1], or None (no file, or a bad one)."""
    path = fault_path(faults_dir, model_type)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    path.unlink(missing_ok=True)
    try:
        strength = float(text.strip())
    except ValueError:
        log.error("fault file %s holds %r, not a number; ignored", path, text[:40])
        return None
    if not (math.isfinite(strength) and 0.0 < strength <= 1.0):
        log.error("fault file %s strength %r outside (0, 1]; ignored", path, strength)
        return None
    return strength


def crash_point(faults_dir: Path, point: str) -> None:
    """Chaos tests: when `<faults_dir>/crash.<point>` exists, delete it and SIGKILL this process.

    Points: `after_artifact` (artifact stored, outcome not recorded), `before_publish` (outcome
    recorded, not published, offset not committed). One file, one crash: the restart goes on.
    """
    path = faults_dir / f"crash.{point}"
    if not path.exists():
        return
    path.unlink(missing_ok=True)
    log.warning("fault injection: SIGKILL at %s", point)
    os.kill(os.getpid(), signal.SIGKILL)


def degrade(network: ScoringNetwork, strength: float, seed: int) -> None:
    """Blend every weight with seeded noise of its own scale; 1.0 leaves a near-random network."""
    generator = torch.Generator().manual_seed(seed + 7919)
    with torch.no_grad():
        for parameter in network.parameters():
            scale = float(parameter.std()) if parameter.numel() > 1 else 1.0
            noise = torch.randn(parameter.shape, generator=generator) * max(scale, 1e-3)
            parameter.mul_(1.0 - strength).add_(noise * strength)


def made_with_fault_injection(metrics: Mapping[str, Any] | None) -> bool:
    return bool((metrics or {}).get(FAULT_INJECTION_FLAG))


class ServingRegistry(Protocol):
    """The registry reads the start-up check needs (training.production.RegistryHttp)."""

    def serving_versions(self) -> dict[str, list[str]]: ...

    def version_record(self, model_type: str, version: str) -> VersionOut: ...


def check_registry_is_a_test_bed(
    registry: ServingRegistry,
    wait_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Refuse (FaultInjectionRefusedError) unless every version that serves traffic was made by a
    fault-enabled trainer.

    Why this guard: fault injection exists to break models on purpose. A registry whose serving
    versions all carry the fault-injection flag is a demo or a test bed, and breaking its next
    model harms no one; one serving a model from a normal trainer (or `relearn train --deploy`)
    has real traffic, and a stray file must not reach it. An empty registry is a fresh test bed.
    A registry that does not answer within `wait_seconds` cannot be checked: refused too.
    """
    deadline = clock() + wait_seconds
    while True:
        try:
            unmarked = [
                f"{model_type} {version}"
                for model_type, versions in sorted(registry.serving_versions().items())
                for version in versions
                if not _marked(registry, model_type, version)
            ]
            break
        except RegistryUnavailableError as exc:
            if clock() >= deadline:
                raise FaultInjectionRefusedError(
                    f"fault injection is on (RELEARN_FAULT_INJECTION=true) and the registry "
                    f"could not be checked within {wait_seconds:.0f} s: {exc}"
                ) from exc
            sleep(1.0)
    if unmarked:
        raise FaultInjectionRefusedError(
            "fault injection is on (RELEARN_FAULT_INJECTION=true), but the registry serves "
            f"versions not made by a fault-enabled trainer: {', '.join(unmarked)}. Fault "
            "injection is for demos and tests: unset RELEARN_FAULT_INJECTION, or point "
            "RELEARN_REGISTRY_URL at a registry of its own."
        )


def _marked(registry: ServingRegistry, model_type: str, version: str) -> bool:
    try:
        return made_with_fault_injection(registry.version_record(model_type, version).metrics)
    except LookupError:  # archived between the two reads: it no longer serves
        return True
