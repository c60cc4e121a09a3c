"""Model type specifications: features, target, loss, architecture and trainer, built in or from a config file."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.trainer_config import BuiltinTrainer, TrainerConfig


class Target(StrEnum):
    OUTCOME_SCORE = "outcome_score"
    POSITIVE_OUTCOME = "positive_outcome"


class Loss(StrEnum):
    MSE = "mse"
    BCE = "bce"


class ModelTypeSpec(BaseModel):
    """What a model type predicts and how its network is shaped."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    feature_count: int = Field(gt=0, le=4096)
    target: Target
    loss: Loss
    hidden_layers: tuple[int, ...] = (128, 64, 32)
    input_name: str = "features"
    output_name: str = "score"
    # Every outcome is known by served_at + this: the A/B test counts a cohort once it is this old.
    outcome_window_seconds: float = Field(default=86_400.0, gt=0, le=366 * 86_400)
    # Named features (in the order outcome events send them); feature_count then follows.
    features: tuple[str, ...] | None = None
    trainer: TrainerConfig = BuiltinTrainer()

    @model_validator(mode="before")
    @classmethod
    def _count_named_features(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("features") is not None:
            data = dict(data)
            named = len(data["features"])
            if len(set(data["features"])) != named:
                raise ValueError("feature names must be unique")
            if data.setdefault("feature_count", named) != named:
                raise ValueError(
                    f"feature_count {data['feature_count']} but {named} named features"
                )
        return data

    @property
    def sigmoid_output(self) -> bool:
        """BCE models output a probability: the sigmoid is part of the exported graph."""
        return self.loss is Loss.BCE

    def parameter_count(self) -> int:
        sizes = [self.feature_count, *self.hidden_layers, 1]
        return sum(a * b + b for a, b in zip(sizes, sizes[1:], strict=False))


BUILT_IN: tuple[ModelTypeSpec, ...] = (
    ModelTypeSpec(
        name="calling_score", feature_count=23, target=Target.OUTCOME_SCORE, loss=Loss.MSE
    ),
    ModelTypeSpec(
        name="outcome_prediction", feature_count=23, target=Target.POSITIVE_OUTCOME, loss=Loss.BCE
    ),
)


class ModelTypeCatalog:
    """The configured model types by name: the built-ins plus any from a YAML file."""

    def __init__(self, specs: tuple[ModelTypeSpec, ...] | list[ModelTypeSpec] = BUILT_IN) -> None:
        self._specs = {spec.name: spec for spec in specs}

    @classmethod
    def load(cls, path: str | Path | None) -> ModelTypeCatalog:
        """Built-ins, extended (or overridden by name) by `model_types:` entries of a YAML file."""
        specs = {spec.name: spec for spec in BUILT_IN}
        if path:
            document = yaml.safe_load(Path(path).read_text()) or {}
            # A trainer's workdir is relative to the file that names it.
            context = {"base_dir": Path(path).resolve().parent}
            for entry in document.get("model_types", []):
                spec = ModelTypeSpec.model_validate(entry, context=context)
                specs[spec.name] = spec
        return cls(list(specs.values()))

    def get(self, name: str) -> ModelTypeSpec | None:
        return self._specs.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def names(self) -> list[str]:
        return sorted(self._specs)
