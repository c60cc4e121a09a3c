"""A faust Kafka transport whose consumer does not sit on idle partitions for 1.5 s per fetch.

faust-streaming builds its aiokafka consumer with `fetch_max_wait_ms=1500`, hard-coded. aiokafka
keeps one fetch in flight per broker and leaves out partitions whose records are still buffered,
so a fetch that covers only quiet partitions (a model type's training-samples partition between
crossings) blocks the next fetch of the busy ones for up to 1.5 s: that alone made the trigger
latency ~2 s. A short wait keeps it to tens of milliseconds at the cost of more fetch requests.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

FETCH_MAX_WAIT_MS = 50


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this when the consumer starts; faust offers no setting for it.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class LowLatencyTransport(faust_aiokafka.Transport):
    """faust's aiokafka transport with a short fetch wait."""

    Consumer = _Consumer
