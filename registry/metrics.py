"""The registry's Prometheus metrics, one collector registry per app instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class RegistryMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
