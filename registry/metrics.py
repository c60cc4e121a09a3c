"""The registry's Prometheus metrics (docs/metrics.md), one collector registry per app instance."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from contracts.serving import Status
from registry.domain import ModelVersion

log = logging.getLogger(__name__)

# A command for a type outside the catalogue is counted under this one label value: labels hold
# bounded values only, never what a producer happened to send.
UNKNOWN_MODEL_TYPE = "unknown"
COMMAND_TYPES = ("rollback", "promote", "set_weights")
COMMAND_STATUSES = ("applied", "refused", "duplicate")


class RegistryMetrics:
    def __init__(self, model_types: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.versions_registered = Counter(
            "relearn_registry_versions_registered_total",
            "Versions registered",
            ["model_type"],
            registry=self.registry,
        )
        self.deployments_rejected = Counter(
            "relearn_registry_deployments_rejected_total",
            "model-deployed events refused",
            ["model_type", "reason"],
            registry=self.registry,
        )
        self.promotions = Counter(
            "relearn_registry_promotions_total",
            "Versions promoted to production",
            ["model_type"],
            registry=self.registry,
        )
        self.rollbacks = Counter(
            "relearn_registry_rollbacks_total",
            "Versions rolled back",
            ["model_type"],
            registry=self.registry,
        )
        self.traffic_changes = Counter(
            "relearn_registry_traffic_changes_total",
            "Weight changes",
            ["model_type"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "relearn_registry_dead_letters_total",
            "Input records sent to the DLQ",
            ["topic", "reason"],
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "relearn_registry_consumer_lag",
            "Records behind the end of each input partition",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.outbox_unsent = Gauge(
            "relearn_registry_outbox_unsent",
            "registry-events committed but not yet published",
            registry=self.registry,
        )
        self.events_published = Counter(
            "relearn_registry_events_published_total",
            "registry-events published",
            registry=self.registry,
        )
        self.routes = Counter(
            "relearn_registry_routes_total",
            "Route lookups served",
            ["model_type"],
            registry=self.registry,
        )
        self.commands_applied = Counter(
            "relearn_registry_commands_applied_total",
            "registry-commands handled, by type and status (applied, refused, duplicate)",
            ["model_type", "type", "status"],
            registry=self.registry,
        )
        self._known = set(model_types)
        for model_type in sorted(self._known):
            # Created at 0 so that increase() sees the first one (docs/metrics.md).
            for counter in (self.versions_registered, self.promotions, self.rollbacks):
                counter.labels(model_type)
            self.traffic_changes.labels(model_type)
            for command_type in COMMAND_TYPES:
                for status in COMMAND_STATUSES:
                    self.commands_applied.labels(model_type, command_type, status)

    def label_of(self, model_type: str) -> str:
        return model_type if model_type in self._known else UNKNOWN_MODEL_TYPE

    def command_handled(self, model_type: str, command_type: str, status: str) -> None:
        self.commands_applied.labels(self.label_of(model_type), command_type, status).inc()

    def watch(
        self,
        versions: Callable[[], Mapping[str, Sequence[ModelVersion]]],
        route_cache_ages: Callable[[], Mapping[str, float]],
    ) -> None:
        """Export the versions table and the route cache, read when Prometheus scrapes."""
        self.registry.register(_StateCollector(versions, route_cache_ages))


class _StateCollector(Collector):
    """Versions by status, live weights and the route cache's age, read at scrape time: every
    instance reports the database's state (aggregate with max), and a version that lost its
    traffic simply has no weight series any more."""

    def __init__(
        self,
        versions: Callable[[], Mapping[str, Sequence[ModelVersion]]],
        route_cache_ages: Callable[[], Mapping[str, float]],
    ) -> None:
        self._versions = versions
        self._route_cache_ages = route_cache_ages

    def describe(self) -> Iterable[Metric]:
        return []  # collected on every scrape, never at registration (no database read then)

    def collect(self) -> Iterator[Metric]:
        by_status = GaugeMetricFamily(
            "relearn_registry_versions",
            "Versions by status, read from the database",
            labels=["model_type", "status"],
        )
        weights = GaugeMetricFamily(
            "relearn_registry_traffic_weight",
            "The live weight of each version with traffic",
            labels=["model_type", "version"],
        )
        try:
            tables = self._versions()
        except Exception as exc:  # noqa: BLE001 - /readyz reports the database; the scrape goes on
            log.warning("versions unreadable for /metrics: %s", exc)
            tables = {}
        for model_type, versions in sorted(tables.items()):
            for status in Status:
                count = sum(1 for v in versions if v.status is status)
                by_status.add_metric([model_type, status.value], count)
            for version in versions:
                if version.weight > 0:
                    weights.add_metric([model_type, version.version], version.weight)
        ages = GaugeMetricFamily(
            "relearn_registry_route_cache_age_seconds",
            "Age of the route table this instance serves from",
            labels=["model_type"],
        )
        for model_type, age in sorted(self._route_cache_ages().items()):
            ages.add_metric([model_type], age)
        yield from (by_status, weights, ages)
