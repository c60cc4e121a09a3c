"""Fault injection for the demo: `<faults_dir>/<model_type>.degrade` spoils the next model."""

from __future__ import annotations

import logging
import math
import os
import signal
from pathlib import Path

import torch

from training.network import ScoringNetwork

log = logging.getLogger(__name__)


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


def crash_point(faults_dir: Path | None, point: str) -> None:
    """Chaos tests: when `<faults_dir>/crash.<point>` exists, delete it and SIGKILL this process.

    Points: `after_artifact` (artifact stored, outcome not recorded), `before_publish` (outcome
    recorded, not published, offset not committed). One file, one crash: the restart goes on.
    """
    if faults_dir is None:
        return
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
