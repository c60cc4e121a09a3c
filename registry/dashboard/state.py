"""What the dashboard keeps for the app's lifetime: the history, its follower, the streams client."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx

from registry.dashboard.follower import HistoryFollower
from registry.dashboard.history import DashboardHistory
from registry.settings import RegistrySettings


@dataclass
class DashboardState:
    history: DashboardHistory
    follower: HistoryFollower | None  # None when the registry runs without Kafka
    streams_url: str
    streams: httpx.AsyncClient


def start_dashboard(
    settings: RegistrySettings, on_weights_event: Callable[[str], None] | None = None
) -> DashboardState:
    """Build the history and start following registry-events and retrain-commands;
    `on_weights_event(model_type)` runs for each registry event that may change weights."""
    history = DashboardHistory(max_items=settings.dashboard_history_max_items)
    if on_weights_event is not None:
        history.on_weights_event(on_weights_event)
    follower: HistoryFollower | None = None
    if settings.registry_kafka_enabled:
        topics = settings.topics
        follower = HistoryFollower(
            settings.bootstrap_servers, topics.registry_events, topics.retrain_commands, history
        )
        follower.start()
    streams_url = settings.streams_url.rstrip("/")
    client = httpx.AsyncClient(base_url=streams_url, timeout=settings.dashboard_streams_timeout)
    return DashboardState(history, follower, streams_url, client)


async def stop_dashboard(state: DashboardState) -> None:
    if state.follower is not None:
        state.follower.stop()
    await state.streams.aclose()
