"""The registry's exceptions: one root, one subclass per kind of refusal, each with a code."""

from __future__ import annotations


class RegistryError(Exception):
    """Root of every refusal the registry makes; `code` is stable (DLQ header, logs, HTTP)."""

    code = "registry_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(RegistryError):
    code = "not_found"


class UnknownModelType(NotFound):
    code = "unknown_model_type"


class UnknownVersion(NotFound):
    code = "unknown_version"


class IllegalTransition(RegistryError):
    """A lifecycle change the state machine does not allow (e.g. promoting a rolled-back one)."""

    code = "illegal_transition"


class TrafficInvariantViolated(IllegalTransition):
    """A change that would leave two candidates with traffic or starve production (HTTP 409)."""

    code = "traffic_invariant"


class InvalidWeights(RegistryError):
    """Weights negative, not finite, not summing to 1, or naming versions that cannot serve."""

    code = "invalid_weights"


class ArtifactRejected(RegistryError):
    """An artifact never to be served: outside the artifact dir, missing, or not its sha256."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class VersionsExhausted(RegistryError):
    """Every `v<major>.<minor>` after the highest one is out of the contract's range."""

    code = "versions_exhausted"


class StoreConflict(RegistryError):
    """A concurrent writer won (unique key or revision); the unit of work is retried."""

    code = "conflict"


class Unstorable(RegistryError):
    """Data the database refuses (too long, invalid characters): retrying cannot help."""

    code = "unstorable"
