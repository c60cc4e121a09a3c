"""What a training script prints: its metric lines and epoch progress, parsed tolerantly. No I/O."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)"
# The lines the original scripts printed ("Test Loss: 0.0257"); case, spacing, '=' or ':' vary.
_LOSSES = {
    "test_loss": re.compile(rf"\btest[ _-]*loss\s*[:=]?\s*{_NUMBER}", re.IGNORECASE),
    "val_loss": re.compile(rf"\b(?:val|validation)[ _-]*loss\s*[:=]?\s*{_NUMBER}", re.IGNORECASE),
    "train_loss": re.compile(rf"\b(?:train|training)[ _-]*loss\s*[:=]?\s*{_NUMBER}", re.IGNORECASE),
}
_EARLY_STOP = re.compile(r"early[ _-]*stopp(?:ing|ed)\b.*?\bepoch\s*[:=]?\s*(\d+)", re.IGNORECASE)
_PARAMETERS = re.compile(
    r"^\s*(?:total\s+)?(\d[\d,_]*)\s+(?:trainable\s+)?parameters\b", re.IGNORECASE
)
_PARAMETERS_AFTER = re.compile(r"\bparameters\s*[:=]\s*(\d[\d,_]*)", re.IGNORECASE)
_EPOCH = re.compile(r"^\s*\[?epoch\s*[:=]?\s*(\d+)(?:\s*/\s*(\d+))?", re.IGNORECASE)

# A script's test loss (on its own split) further than this from relearn's (on the held-back
# rows), relative to relearn's, is logged: the script may be measuring something else.
DISAGREEMENT = 0.5


def _float(text: str) -> float:
    return float(text)


def parse_metric_lines(lines: list[str]) -> dict[str, Any]:
    """The metrics a script reported; a metric printed several times counts by its last line."""
    found: dict[str, Any] = {}
    for line in lines:
        if _EPOCH.match(line):
            continue  # per-epoch losses are progress, not the final figures
        for key, pattern in _LOSSES.items():
            match = pattern.search(line)
            if match:
                found[key] = _float(match.group(1))
        match = _EARLY_STOP.search(line)
        if match:
            found["early_stopping_epoch"] = int(match.group(1))
        match = _PARAMETERS.search(line) or _PARAMETERS_AFTER.search(line)
        if match:
            found["parameters"] = int(match.group(1).replace(",", "").replace("_", ""))
    return found


@dataclass(frozen=True)
class EpochLine:
    epoch: int
    max_epochs: int | None
    train_loss: float
    val_loss: float


def parse_epoch_line(line: str) -> EpochLine | None:
    """`Epoch 3/100 ... train loss 0.1 ... val loss 0.2` (losses optional), else None."""
    match = _EPOCH.match(line)
    if not match:
        return None
    rest = line[match.end() :]
    train = _LOSSES["train_loss"].search(rest)
    val = _LOSSES["val_loss"].search(rest)
    return EpochLine(
        epoch=int(match.group(1)),
        max_epochs=int(match.group(2)) if match.group(2) else None,
        train_loss=_float(train.group(1)) if train else math.nan,
        val_loss=_float(val.group(1)) if val else math.nan,
    )


def disagreement(reported: dict[str, Any], test_loss: float) -> str | None:
    """Why the script's test loss and relearn's differ a lot, or None when they agree."""
    theirs = reported.get("test_loss")
    if not isinstance(theirs, float) or not math.isfinite(theirs):
        return None
    gap = abs(theirs - test_loss)
    if gap <= DISAGREEMENT * max(abs(test_loss), 1e-3):
        return None
    return (
        f"the trainer reported test loss {theirs:.6g}, relearn measured {test_loss:.6g} "
        f"on the held-back rows"
    )
