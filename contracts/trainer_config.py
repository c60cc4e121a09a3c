"""How a model type is trained, as the operator configures it: builtin MLP, a script, or a plugin."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

# The placeholders an argv template may use; anything else in braces is passed as written.
ARGV_PLACEHOLDERS = ("{python}", "{data}", "{data_parquet}", "{output}", "{workdir}")


class TrainerKind(StrEnum):
    BUILTIN = "builtin"
    SCRIPT = "script"
    PYTHON = "python"


class _TrainerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _base_dir(info: ValidationInfo) -> Path:
    """The YAML file's folder (passed as validation context by the catalog), else the cwd."""
    context = info.context or {}
    return Path(context.get("base_dir") or ".")


class BuiltinTrainer(_TrainerConfig):
    """relearn's own torch MLP (the default)."""

    kind: Literal[TrainerKind.BUILTIN] = TrainerKind.BUILTIN


class ScriptTrainer(_TrainerConfig):
    """A team's training script run as a child process: argv template, workdir, env, timeout."""

    kind: Literal[TrainerKind.SCRIPT]
    # From the operator's file only: a command never carries one, and it never meets a shell.
    argv: tuple[str, ...] = Field(min_length=1)
    workdir: Path | None = Field(default=None, validate_default=True)
    env: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=900.0, gt=0)

    @field_validator("argv")
    @classmethod
    def _needs_output(cls, argv: tuple[str, ...]) -> tuple[str, ...]:
        if not any("{output}" in part for part in argv):
            raise ValueError("a script trainer's argv must contain {output}")
        if not any("{data}" in part or "{data_parquet}" in part for part in argv):
            raise ValueError("a script trainer's argv must contain {data} or {data_parquet}")
        return argv

    @field_validator("workdir", mode="after")
    @classmethod
    def _relative_to_file(cls, workdir: Path | None, info: ValidationInfo) -> Path:
        base = _base_dir(info)
        return (base / workdir if workdir is not None else base).resolve()


class PythonTrainer(_TrainerConfig):
    """An in-process plugin `package.module:function`, importable from `workdir` or sys.path."""

    kind: Literal[TrainerKind.PYTHON]
    entry: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    workdir: Path | None = Field(default=None, validate_default=True)

    @field_validator("workdir", mode="after")
    @classmethod
    def _relative_to_file(cls, workdir: Path | None, info: ValidationInfo) -> Path:
        base = _base_dir(info)
        return (base / workdir if workdir is not None else base).resolve()


TrainerConfig = Annotated[
    BuiltinTrainer | ScriptTrainer | PythonTrainer, Field(discriminator="kind")
]
