"""`edge-slm worker`: serves pooled model requests (see edge_slm/llm/pool.py).

One model, one worker thread (the engine's), one MQTT connection with a shared subscription on
`{prefix}/llm/request`. Each request runs with the node's priority and what is left of its
deadline; the answer goes to the request's response topic with its correlation data. The worker's
status is `online`/`offline` on `{prefix}/status/{node}` like a daemon's, and its capacity is on
`{prefix}/llm/workers/{node}` (retained)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import logging
import signal
import time
from typing import Any

from edge_slm.bus.identity import default_client_id, secure_state_dir
from edge_slm.bus.mqtt import InboundMessage, MqttBus
from edge_slm.bus.topics import Topics
from edge_slm.config import Settings
from edge_slm.errors import DecodeError, EdgeSlmError
from edge_slm.llm.api import GenerationResult, LlmEngine
from edge_slm.llm.pool import RecentAnswers, capacity_topic, decode_request, encode_result, shared_request_filter

log = logging.getLogger(__name__)

CAPACITY_INTERVAL_S = 5.0
MAX_IN_PROGRESS = 64  # requests queued at this worker's model; more are answered "busy" at once


class PoolWorker:
    def __init__(self, settings: Settings, engine: LlmEngine) -> None:
        self.settings = settings
        self.engine = engine
        self.node = settings.effective_node_id
        topics = Topics(settings.mqtt.topic_prefix, self.node)
        self._capacity_topic = capacity_topic(topics.prefix, self.node)
        # A clean session: a dead worker's share of the subscription must go with its connection,
        # or the broker would keep queueing requests for it (the node's retry covers the rest).
        self.bus = MqttBus(
            dataclasses.replace(settings.mqtt, clean_start=True),
            client_id=default_client_id(
                settings.mqtt.client_id, f"worker-{self.node}", secure_state_dir(settings.effective_state_dir)
            ),
            status_topic=topics.status,
            subscriptions=[shared_request_filter(topics.prefix)],
            on_connected=lambda _session: self._publish_capacity(),
        )
        self._recent = RecentAnswers()
        self._in_progress = 0
        self.served = 0
        self.rejected = 0

    async def serve(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self.bus.start(loop)
        consume = asyncio.create_task(self._consume())
        capacity = asyncio.create_task(self._publish_capacity_periodically())
        log.info("edge-slm worker %r serving %s", self.node, self.engine.model_name)
        try:
            await stop.wait()
        finally:
            consume.cancel()
            capacity.cancel()
            await asyncio.gather(consume, capacity, return_exceptions=True)
            self.bus.publish(self._capacity_topic, b"", qos=1, retain=True)  # no longer serving
            self.engine.close()
            self.bus.stop()

    async def _consume(self) -> None:
        while True:
            for message in await self.bus.next_batch():
                try:
                    self._handle(message)
                except Exception:  # one bad request never stops the worker
                    log.exception("worker: request on %s failed", message.topic)
                finally:
                    self.bus.ack(message)

    def _handle(self, message: InboundMessage) -> None:
        if not message.response_topic:
            self.rejected += 1
            return
        try:
            request_id, request, deadline_ts = decode_request(message.payload)
        except DecodeError as err:
            self.rejected += 1
            log.debug("worker: %s", err)
            return
        new, earlier = self._recent.start(request_id)
        if not new:
            if earlier is not None:  # the node asked again: the same answer, never a second one
                self._reply(message, earlier)
            return
        remaining_s = deadline_ts - time.time()
        if remaining_s <= 0:
            self._finish(message, request_id, encode_result(request_id, self.node, None, "deadline passed"), ran=False)
            return
        if self._in_progress >= MAX_IN_PROGRESS:  # bounded: a flood from the bus cannot grow the queue
            self._finish(message, request_id, encode_result(request_id, self.node, None, "busy"), ran=False)
            return
        self._in_progress += 1

        future = self.engine.submit(dataclasses.replace(request, deadline_s=remaining_s))

        def done(fut: concurrent.futures.Future[GenerationResult]) -> None:
            try:
                answer = encode_result(request_id, self.node, fut.result())
            except EdgeSlmError as err:
                answer = encode_result(request_id, self.node, None, err.message)
            except Exception as err:
                answer = encode_result(request_id, self.node, None, f"{type(err).__name__}: {err}")
            self.bus.call_soon(self._finish, message, request_id, answer)  # one loop wake per burst

        future.add_done_callback(done)

    def _finish(self, message: InboundMessage, request_id: str, answer: bytes, *, ran: bool = True) -> None:
        if ran:
            self._in_progress = max(0, self._in_progress - 1)
        self.served += 1
        self._recent.finish(request_id, answer)
        self._reply(message, answer)

    def _reply(self, message: InboundMessage, answer: bytes) -> None:
        self.bus.publish(message.response_topic, answer, qos=1, correlation=message.correlation)

    def capacity(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "model": self.engine.model_name,
            "in_progress": self._in_progress,
            "served": self.served,
            "rejected": self.rejected,
            "ts": time.time(),
        }

    def _publish_capacity(self) -> None:
        self.bus.publish(self._capacity_topic, json.dumps(self.capacity()), qos=1, retain=True)

    async def _publish_capacity_periodically(self) -> None:
        while True:
            await asyncio.sleep(CAPACITY_INTERVAL_S)
            self._publish_capacity()


async def run_worker(settings: Settings, engine: LlmEngine) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await PoolWorker(settings, engine).serve(stop)
