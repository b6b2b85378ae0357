"""Durable publishing: every message that must not be lost goes through the outbox first,
then to the broker. A PUBACK removes replies and actions; alerts and explanations stay
(marked acknowledged) for REDELIVER_WINDOW_S, so they can be sent again when the broker
comes back without our session. After a reconnect the outbox is replayed at a bounded
rate, alerts first. When the outbox itself fails (disk full, read-only) messages
are kept in a bounded memory queue instead and the failure is counted.

PUBACKs arrive in batches (one loop wake-up per burst); whoever must wait for one (the replay
between its batches, the drain at shutdown) waits on a future per message id, not a poll."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge_slm.bus.mqtt import MqttBus
from edge_slm.bus.outbox import Kind, Outbox, OutboxError, OutboxRow

log = logging.getLogger(__name__)

MEMORY_QUEUE_LIMIT = 10_000
# After a broker crash that lost its sessions, alerts and explanations it acknowledged this
# recently are sent again: subscribers' queued copies died with the broker.
REDELIVER_WINDOW_S = 300.0
REDELIVER_DELAY_S = 2.0  # give subscribers a moment to reconnect and subscribe again
PURGE_INTERVAL_S = 30.0  # how often acknowledged rows past the window are deleted
REPLAY_ACK_WAIT_S = 5.0  # the replay reads its next batch after the PUBACKs of this one, or this long


@dataclass
class PublisherCounters:
    sent: int = 0
    acked: int = 0
    replayed: int = 0
    outbox_errors: int = 0
    memory_dropped: int = 0
    redelivered: int = 0


class DurablePublisher:
    def __init__(
        self,
        bus: MqttBus,
        outbox: Outbox | None,
        replay_rate_per_s: float,
        kind_ttl_s: Mapping[Kind, float] | None = None,  # the memory queue's age limits (the outbox has its own)
    ) -> None:
        self._bus = bus
        self._kind_ttl_s = dict(kind_ttl_s or {})
        self._outbox = outbox
        self._replay_interval_s = 1.0 / replay_rate_per_s
        self._in_flight: dict[int, int] = {}  # mid -> outbox row id (negative: memory queue)
        self._in_flight_kind: dict[int, Kind] = {}  # row id -> kind, until acknowledged
        self._ack_waiters: dict[int, asyncio.Future[None]] = {}  # mid -> resolved by its PUBACK
        self._memory: collections.OrderedDict[int, OutboxRow] = collections.OrderedDict()
        self._next_memory_id = -1
        self._replay_task: asyncio.Task[None] | None = None
        self._connected_before = False
        self._last_purge_ts = 0.0
        self.counters = PublisherCounters()
        self._outbox_error_logged = False

    def use_outbox(self, outbox: Outbox | None) -> None:
        """At start-up, once the outbox is open (None: memory only)."""
        self._outbox = outbox

    @property
    def backlog(self) -> int:
        return (self._outbox.unacknowledged() if self._outbox else 0) + len(self._memory)

    def send(self, kind: Kind, topic: str, payload: dict[str, Any], qos: int = 1) -> None:
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        row_id = self._store(kind, topic, data, qos)
        self.counters.sent += 1
        if len(self._in_flight_kind) > MEMORY_QUEUE_LIMIT * 10:  # rows evicted before any PUBACK
            self._in_flight_kind.clear()  # costs only the redelivery window of those rows
        self._in_flight_kind[row_id] = kind
        mid = self._bus.publish(topic, data, qos=qos)
        if mid is not None:
            self._in_flight[mid] = row_id
        # else: not connected; the replay after the next connect sends it

    def _store(self, kind: Kind, topic: str, data: bytes, qos: int) -> int:
        if self._outbox is not None:
            try:
                return self._outbox.put(kind, topic, data, qos)
            except OutboxError as err:
                self.counters.outbox_errors += 1
                if not self._outbox_error_logged:
                    log.error("outbox: %s; keeping messages in memory until it works again", err)
                    self._outbox_error_logged = True
        row_id = self._next_memory_id
        self._next_memory_id -= 1
        self._memory[row_id] = OutboxRow(row_id, kind, topic, data, qos, False, time.time())
        while len(self._memory) > MEMORY_QUEUE_LIMIT:
            self._memory.popitem(last=False)
            self.counters.memory_dropped += 1
        return row_id

    def on_published_batch(self, mids: list[int]) -> None:
        """PUBACKs handed over from the network thread, one batch per loop wake-up."""
        if self._outbox is not None and len(mids) > 1:
            try:
                with self._outbox.transaction():  # one commit for the batch
                    self._acknowledge(mids)
            except OutboxError as err:
                self.counters.outbox_errors += 1
                log.warning("outbox: %s", err)
        else:
            self._acknowledge(mids)

    def _acknowledge(self, mids: list[int]) -> None:
        for mid in mids:
            waiter = self._ack_waiters.pop(mid, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            row_id = self._in_flight.pop(mid, None)
            if row_id is None:
                continue
            self.counters.acked += 1
            kind = self._in_flight_kind.pop(row_id, None)
            if row_id < 0:
                self._memory.pop(row_id, None)
                continue
            if self._outbox is not None:
                try:
                    self._outbox.acknowledge(row_id, keep=kind in _KEPT)
                except OutboxError as err:
                    self.counters.outbox_errors += 1
                    log.warning("outbox: %s", err)
        now = time.time()
        if self._outbox is not None and now - self._last_purge_ts > PURGE_INTERVAL_S:
            self._last_purge_ts = now
            try:
                self._outbox.forget_acknowledged(now - REDELIVER_WINDOW_S)
            except OutboxError as err:
                self.counters.outbox_errors += 1
                log.warning("outbox: %s", err)

    def _wait_for_acks(self, mids: list[int]) -> list[asyncio.Future[None]]:
        loop = asyncio.get_running_loop()
        futures = []
        for mid in mids:
            if mid not in self._in_flight:
                continue  # acknowledged already
            waiter = self._ack_waiters.get(mid)
            if waiter is None:
                waiter = self._ack_waiters[mid] = loop.create_future()
            futures.append(waiter)
        return futures

    def _release_waiters(self) -> None:
        for waiter in self._ack_waiters.values():
            if not waiter.done():
                waiter.set_result(None)
        self._ack_waiters.clear()

    def on_connected(self, session_present: bool = True) -> None:
        # Messages in flight on the old connection get no PUBACK now: replay them all.
        self._in_flight.clear()
        self._release_waiters()
        delay_s = 0.0
        if self._connected_before and not session_present and self._outbox is not None:
            try:
                again = self._outbox.requeue_acknowledged(time.time() - REDELIVER_WINDOW_S)
            except OutboxError as err:
                again = 0
                self.counters.outbox_errors += 1
                log.warning("outbox: %s", err)
            if again:
                log.warning(
                    "broker came back without our session: sending the last %d alerts/explanations again", again
                )
                self.counters.redelivered += again
                delay_s = REDELIVER_DELAY_S
        self._connected_before = True
        if self._replay_task is None or self._replay_task.done():
            self._replay_task = asyncio.get_running_loop().create_task(self._replay(delay_s), name="outbox-replay")

    async def _replay(self, delay_s: float = 0.0) -> None:
        if delay_s:
            await asyncio.sleep(delay_s)
        while self._bus.connected:
            rows = self._pending_rows(200)
            if not rows:
                return
            mids: list[int] = []
            for row in rows:
                if not self._bus.connected:
                    return
                mid = self._bus.publish(row.topic, _flag_replayed(row.payload), qos=row.qos, retain=row.retain)
                if mid is None:
                    return
                self._in_flight[mid] = row.row_id
                self._in_flight_kind[row.row_id] = row.kind
                mids.append(mid)
                self.counters.replayed += 1
                await asyncio.sleep(self._replay_interval_s)
            # wait for the PUBACKs of this batch before reading the next one
            waiters = self._wait_for_acks(mids)
            if waiters:
                await asyncio.wait(waiters, timeout=REPLAY_ACK_WAIT_S)

    def _pending_rows(self, limit: int) -> list[OutboxRow]:
        flying = set(self._in_flight.values())
        rows: list[OutboxRow] = []
        if self._outbox is not None:
            try:
                self._outbox.forget_acknowledged(time.time() - REDELIVER_WINDOW_S)
                rows = self._outbox.pending(limit, exclude=flying)
            except OutboxError as err:
                self.counters.outbox_errors += 1
                log.warning("outbox: %s", err)
        now = time.time()
        for row in [r for r in self._memory.values() if now - r.created_ts > self._kind_ttl_s.get(r.kind, now)]:
            del self._memory[row.row_id]  # an action past its time to live is never replayed
        rows += [r for r in self._memory.values() if r.row_id not in flying][: max(0, limit - len(rows))]
        rows.sort(key=lambda r: (r.kind, r.row_id if r.row_id > 0 else -r.row_id))
        return rows

    async def drain(self, timeout_s: float) -> None:
        """On shutdown: give in-flight messages a moment to be acknowledged."""
        waiters = self._wait_for_acks(list(self._in_flight))
        if waiters:
            await asyncio.wait(waiters, timeout=timeout_s)


_KEPT = (Kind.ALERT, Kind.EXPLANATION)


def _flag_replayed(payload: bytes) -> bytes:
    try:
        doc = json.loads(payload)
    except ValueError:
        return payload
    if isinstance(doc, dict):
        doc["replayed"] = True
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    return payload


__all__ = ["DurablePublisher", "Kind"]
