"""The MQTT adapter: the only module that imports paho-mqtt.

paho runs its network loop on its own thread. Its callbacks only hand data to the asyncio
loop: inbound messages go into a bounded deque and PUBACK mids into another, and the loop is
woken once per burst (bus/handoff.py), never once per message or PUBACK: per-event
`call_soon_threadsafe` fills asyncio's self-pipe while the loop is busy and then loses the
byte that carries SIGTERM. Telemetry is acknowledged manually, after the daemon has judged
it, so a message that arrives just before a crash is redelivered by the broker.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edge_slm.bus.handoff import CallQueue, LoopWaker
from edge_slm.bus.ingest_health import BrokerDropWatch, IngestHealth
from edge_slm.config import MqttSettings
from edge_slm.errors import StartupError

log = logging.getLogger(__name__)

# CONNACK reason codes that mean "this broker does not speak MQTT 5" (v3 rc 1 / v5 0x84).
_UNSUPPORTED_PROTOCOL = {1, 132}
BACKPRESSURE_WAIT_S = 5.0
ACKS_PER_WAKE = 256
# MQTT 5 Receive Maximum caps the QoS 1/2 messages the broker sends us before our acks; the
# protocol's own ceiling is 65535.
MAX_RECEIVE_MAXIMUM = 65535
# Mosquitto's count of messages it dropped for full client queues / in-flight windows.
BROKER_DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"
# After a batch of several messages (a burst), the consumer lets the network thread collect
# messages this long before it asks to be woken again: that turns a loop wake-up per message
# into one per batch, for at most this much added latency. After a single message (a quiet
# bus) it waits at once.
COALESCE_S = 0.001
ACK_WAKE_BATCH = 64  # PUBACKs that wake paho's thread at once on MQTT 5 (see flush_acks)


@dataclass(frozen=True, slots=True)
class InboundMessage:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    received_ts: float
    response_topic: str = ""  # MQTT 5 request/response (pooled model work)
    correlation: bytes = b""


@dataclass
class BusCounters:
    received: int = 0
    dropped_inbound: int = 0
    dropped_inbound_bytes: int = 0  # of those, dropped because the inbox byte budget was spent
    published: int = 0
    publish_errors: int = 0
    connects: int = 0
    disconnects: int = 0
    inbox_high_water: int = 0  # the deepest the inbox has been
    loop_wakeups: int = 0  # thread -> loop wake-ups (one per burst, not per message)


class MqttBus:
    """Connects, keeps connecting, subscribes, publishes, and hands inbound messages over."""

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        status_topic: str,
        subscriptions: Sequence[str | tuple[str, int]],  # a topic (QoS 1) or (topic, QoS)
        on_connected: Callable[[bool], None] | None = None,
        on_published: Callable[[list[int]], None] | None = None,
        watch_broker_drops: bool = False,
    ) -> None:
        """`on_published` gets the mids of PUBACKs in batches, on the loop."""
        self._settings = settings
        self._client_id = client_id
        self._status_topic = status_topic
        self._subscriptions = subscriptions
        self._on_connected = on_connected
        self._on_published = on_published
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: collections.deque[InboundMessage] = collections.deque()
        self._inbox_event: asyncio.Event | None = None
        self._acked: collections.deque[int] = collections.deque()
        # Set while the consumer waits for messages: only then does a message wake the loop
        # (a busy consumer takes the next batch without being woken).
        self._consumer_waiting = False
        self._pending_acks: list[tuple[int, int]] = []  # (mid, qos) judged, PUBACK not yet queued
        self._last_batch_size = 0
        self._acks_not_woken = 0
        self._ack_wake_after = 1  # set per protocol in _make_client
        self._waker: LoopWaker | None = None
        self._calls: CallQueue | None = None
        self.health = IngestHealth(settings.inbound_queue_size)
        self.broker_drops = BrokerDropWatch() if watch_broker_drops else None
        self._client: Any = None
        self._use_v5 = settings.protocol in ("auto", "5")
        self._connected = threading.Event()
        self._subscribed = threading.Event()  # the broker confirmed our subscriptions (then `online`)
        self._last_error = ""
        self.counters = BusCounters()
        self._mqtt: Any = None
        self._closing = False
        self._refused = False
        self._space = threading.Event()
        self._subscribe_mid = -1
        self._inbox_bytes = 0  # payload bytes held in the inbox (byte budget: settings.inbound_queue_bytes)
        self._bytes_lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` on the loop, from any thread, with one loop wake-up per burst
        (bus/handoff.py: a self-pipe byte per call would crowd out a signal's)."""
        if self._calls is not None:
            self._calls.post(fn, *args)

    @property
    def client_id(self) -> str:
        return self._client_id

    def use_client_id(self, client_id: str) -> None:
        """Before `start`: the id chosen at start-up (it may read the state directory)."""
        self._client_id = client_id

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def subscribed(self) -> bool:
        """Connected and subscribed: what is published now reaches the daemon."""
        return self._connected.is_set() and self._subscribed.is_set()

    @property
    def last_error(self) -> str:
        return self._last_error

    @property
    def inbox_depth(self) -> int:
        return len(self._inbox)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            import paho.mqtt.client as mqtt
        except ImportError as err:  # pragma: no cover - paho is a hard dependency
            raise StartupError("paho-mqtt is not installed: pip install paho-mqtt") from err
        self._mqtt = mqtt
        self._loop = loop
        self._inbox_event = asyncio.Event()
        # start() runs on the loop's thread: wakes from that thread skip the self-pipe.
        self._waker = LoopWaker(loop, self._on_wake)
        self._waker.bind_to_current_thread()
        self._calls = CallQueue(loop)
        self._calls.waker.bind_to_current_thread()
        self._client = self._make_client()
        self._client.connect_async(
            self._settings.host, self._settings.port, self._settings.keepalive_s, **self._connect_kwargs()
        )
        self._client.loop_start()

    def _make_client(self) -> Any:
        mqtt = self._mqtt
        s = self._settings
        protocol = mqtt.MQTTv5 if self._use_v5 else mqtt.MQTTv311
        # MQTT 5: we give the broker a window of Receive Maximum unacknowledged messages, so a
        # few PUBACKs may wait for paho's next wake while half the window is left. MQTT 3.1.1:
        # the window is the broker's (Mosquitto's max_inflight_messages, 20 by default) and
        # unknown here, so every batch of PUBACKs wakes paho at once.
        receive_maximum = max(1, min(MAX_RECEIVE_MAXIMUM, s.inbound_queue_size))
        self._ack_wake_after = max(1, min(ACK_WAKE_BATCH, receive_maximum // 2)) if self._use_v5 else 1
        kwargs: dict[str, Any] = {"client_id": self._client_id, "protocol": protocol, "manual_ack": True}
        if not self._use_v5:
            kwargs["clean_session"] = s.clean_start
        from edge_slm.bus.paho_buffered import BufferedClient  # paho itself, reading in 64 KiB gulps

        client = BufferedClient(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
        # paho logs every publish attempted while disconnected at ERROR; this adapter reports
        # connection state itself, so paho's own lines are for debugging only.
        # Only when debugging: paho formats a log call per packet otherwise (3% of ingest).
        if log.isEnabledFor(logging.DEBUG):
            client.enable_logger(logging.getLogger("edge_slm.bus.paho"))
        client.reconnect_delay_set(min_delay=max(1, int(s.reconnect_min_s)), max_delay=max(1, int(s.reconnect_max_s)))
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        if s.username:
            client.username_pw_set(s.username, s.password or None)
        if s.tls:
            try:
                client.tls_set(
                    ca_certs=s.tls_ca_file or None,
                    certfile=s.tls_cert_file or None,
                    keyfile=s.tls_key_file or None,
                    cert_reqs=ssl.CERT_NONE if s.tls_insecure else ssl.CERT_REQUIRED,
                )
            except (OSError, ssl.SSLError, ValueError) as err:
                raise StartupError(f"mqtt TLS settings are unusable: {err}") from err
            if s.tls_insecure:
                client.tls_insecure_set(True)
        client.will_set(self._status_topic, "offline", qos=1, retain=True)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        client.on_publish = self._handle_publish
        client.on_connect_fail = self._handle_connect_fail
        client.on_subscribe = self._handle_subscribe
        return client

    def _connect_kwargs(self) -> dict[str, Any]:
        if not self._use_v5:
            return {}
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0 if self._settings.clean_start else self._settings.session_expiry_s
        props.MaximumPacketSize = self._settings.max_packet_bytes  # the broker drops larger packets for us
        # The broker may have as many unacknowledged messages out to us as our inbox holds: a
        # burst waits here (counted, backpressured) rather than in the broker's per-client
        # queue, which drops silently once full (Mosquitto's max_queued_messages).
        props.ReceiveMaximum = max(1, min(MAX_RECEIVE_MAXIMUM, self._settings.inbound_queue_size))  # see _make_client
        return {"clean_start": self._settings.clean_start, "properties": props}

    def stop(self, timeout_s: float = 3.0) -> None:
        """Publish `offline`, disconnect cleanly (so the Last Will is not sent) and stop."""
        if self._client is None:
            return
        self._closing = True
        try:
            self.flush_acks()
            if self.connected:
                info = self._client.publish(self._status_topic, "offline", qos=1, retain=True)
                info.wait_for_publish(timeout=timeout_s)
            self._client.disconnect()
        except (RuntimeError, ValueError, OSError) as err:
            log.warning("mqtt: clean disconnect failed: %s", err)
        finally:
            self._client.loop_stop()

    # -- publishing ---------------------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 1,
        retain: bool = False,
        *,
        response_topic: str = "",
        correlation: bytes = b"",
    ) -> int | None:
        """Hand a message to paho. Returns the mid, or None when it could not be queued.
        `response_topic`/`correlation` are MQTT 5 request/response properties (ignored on 3.1.1)."""
        if self._client is None or not self.connected:
            return None
        properties = None
        if (response_topic or correlation) and self._use_v5:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            properties = Properties(PacketTypes.PUBLISH)
            if response_topic:
                properties.ResponseTopic = response_topic
            if correlation:
                properties.CorrelationData = correlation
        try:
            info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        except (ValueError, RuntimeError, OSError) as err:
            self.counters.publish_errors += 1
            log.warning("mqtt: publish to %s failed: %s", topic, err)
            return None
        if info.rc != 0:
            self.counters.publish_errors += 1
            return None
        self.counters.published += 1
        return int(info.mid)

    def ack(self, message: InboundMessage) -> None:
        """Acknowledge a judged message; the PUBACKs of a batch go out together at the next
        `next_batch` (or `flush_acks`, or `stop`)."""
        if message.qos > 0:
            self._pending_acks.append((message.mid, message.qos))

    def flush_acks(self) -> None:
        acks, self._pending_acks = self._pending_acks, []
        client = self._client
        if not acks or client is None:
            return
        # paho wakes its network thread with one byte per queued packet. Here a batch wakes it
        # once, and on MQTT 5 a few PUBACKs wake nobody: paho writes them when its thread next
        # wakes (the next inbound packet, or its select timeout of at most a second) while the
        # broker still has half its Receive Maximum window. That saves a thread round trip per
        # message on a quiet bus. Without that paho attribute: one wake per PUBACK, as paho does.
        wake_socket = getattr(client, "_sockpairW", None)
        if wake_socket is not None:
            client._sockpairW = None
        try:
            for mid, qos in acks:
                client.ack(mid, qos)
        except (ValueError, RuntimeError, OSError) as err:
            log.debug("mqtt: ack failed: %s", err)
        finally:
            if wake_socket is not None:
                client._sockpairW = wake_socket
                self._acks_not_woken += len(acks)
                if self._acks_not_woken >= self._ack_wake_after or self._closing:
                    self._acks_not_woken = 0
                    try:
                        wake_socket.send(b"0")
                    except OSError:
                        pass  # a wake-up is pending already (BlockingIOError), or the client is closing

    # -- inbound ------------------------------------------------------------------------

    async def next_batch(self, max_items: int = 500) -> list[InboundMessage]:
        """Wait for inbound messages and take up to `max_items` of them."""
        assert self._inbox_event is not None
        self.flush_acks()
        if not self._inbox and self._last_batch_size > 1:
            await asyncio.sleep(COALESCE_S)  # not waiting: messages arriving now wake nobody
        while not self._inbox:
            self._inbox_event.clear()
            self._consumer_waiting = True  # before looking at the inbox: see _handle_message
            if self._inbox:
                break
            await self._inbox_event.wait()
        self._consumer_waiting = False
        depth = len(self._inbox)
        inbox = self._inbox
        batch = [inbox.popleft() for _ in range(min(max_items, depth))]
        self._last_batch_size = len(batch)
        taken_bytes = sum(len(message.payload) for message in batch)
        with self._bytes_lock:
            self._inbox_bytes -= taken_bytes
        if (
            len(inbox) < self._settings.inbound_queue_size // 2
            and self._inbox_bytes < self._settings.inbound_queue_bytes // 2
        ):
            self._space.set()
        behind = self.health.observe(time.time(), depth, batch[0].received_ts)
        if behind:
            log.warning("ingest: %s", behind)
        return batch

    def hand_over_remaining_acks(self) -> None:
        """After `stop`: the PUBACKs that came in while disconnecting go to `on_published` now (the
        caller closes the outbox next); wake-ups still queued on the loop then hand over nothing."""
        on_published, self._on_published = self._on_published, None
        while self._acked and on_published is not None:
            on_published([self._acked.popleft() for _ in range(min(len(self._acked), ACKS_PER_WAKE))])

    def _on_wake(self) -> None:
        """On the loop: hand over the PUBACKs and inbound messages that arrived since the last wake."""
        self.counters.loop_wakeups += 1
        if self._acked:
            # In slices: thousands of PUBACKs after an alert flood are thousands of outbox updates.
            mids = [self._acked.popleft() for _ in range(min(len(self._acked), ACKS_PER_WAKE))]
            if self._on_published is not None:
                self._on_published(mids)
            if self._acked and self._waker is not None:
                self._waker.wake()  # the rest after the loop's other ready work
        if self._inbox and self._inbox_event is not None:
            self._inbox_event.set()

    def metrics(self) -> dict[str, Any]:
        """Where messages wait or are lost on their way in (for the daemon's metrics)."""
        out = self.health.snapshot()
        out["inbox_depth"] = len(self._inbox)
        out["inbox_high_water"] = self.counters.inbox_high_water
        out["inbox_dropped"] = self.counters.dropped_inbound
        out["loop_wakeups"] = self.counters.loop_wakeups
        if self.broker_drops is not None:
            out["broker_dropped"] = self.broker_drops.dropped_since_start
        return out

    # -- paho callbacks (network thread) -------------------------------------------------

    def _handle_message(self, client: Any, userdata: Any, message: Any) -> None:
        if self.broker_drops is not None and message.topic == BROKER_DROPPED_TOPIC:
            warning = self.broker_drops.update(message.payload)
            if warning:
                log.warning("mqtt: %s", warning)
            return
        self.counters.received += 1
        size = len(message.payload)
        if size > self._settings.inbound_queue_bytes:  # can never fit: drop at once
            self._drop(client, message, by_bytes=True)
            return
        if len(self._inbox) >= self._settings.inbound_queue_size or self._over_byte_budget(size):
            # Backpressure: stop reading from the socket for a while (the broker holds what
            # follows); if the daemon is still behind, drop this one, ack it so it does not hold
            # the broker's in-flight quota, and count it.
            self._space.clear()
            if not self._space.wait(BACKPRESSURE_WAIT_S) and (
                len(self._inbox) >= self._settings.inbound_queue_size or self._over_byte_budget(size)
            ):
                self._drop(client, message, by_bytes=self._over_byte_budget(size))
                return
        with self._bytes_lock:
            self._inbox_bytes += size
        props = getattr(message, "properties", None)
        self._inbox.append(
            InboundMessage(
                message.topic,
                bytes(message.payload),
                message.qos,
                bool(message.retain),
                message.mid,
                time.time(),
                str(getattr(props, "ResponseTopic", "") or ""),
                bytes(getattr(props, "CorrelationData", b"") or b""),
            )
        )
        depth = len(self._inbox)
        if depth > self.counters.inbox_high_water:
            self.counters.inbox_high_water = depth
        if self._consumer_waiting and self._waker is not None:  # after the append: see next_batch
            self._waker.wake()

    def _over_byte_budget(self, size: int) -> bool:
        return self._inbox_bytes + size > self._settings.inbound_queue_bytes

    def _drop(self, client: Any, message: Any, by_bytes: bool) -> None:
        """Drop an inbound message, ack it so it does not hold the broker's in-flight quota, count it."""
        self.counters.dropped_inbound += 1
        if by_bytes:
            self.counters.dropped_inbound_bytes += 1
        if message.qos > 0:
            client.ack(message.mid, message.qos)

    def _handle_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        code = int(getattr(reason_code, "value", reason_code))
        if code != 0:
            if code in _UNSUPPORTED_PROTOCOL and self._use_v5 and self._settings.protocol == "auto":
                log.warning("mqtt: broker refused MQTT 5; falling back to MQTT 3.1.1")
                self._use_v5 = False
                threading.Thread(target=self._recreate_client, name="mqtt-fallback", daemon=True).start()
                return
            message = f"broker {self._settings.host}:{self._settings.port} refused the connection: {reason_code}"
            if message != self._last_error:
                log.error("mqtt: %s (will keep retrying with backoff)", message)
            self._last_error = message
            self._refused = True
            return
        self._last_error = ""
        self._refused = False
        self._connected.set()
        self.counters.connects += 1
        log.info(
            "mqtt: connected to %s:%s (%s)",
            self._settings.host,
            self._settings.port,
            "MQTT 5" if self._use_v5 else "MQTT 3.1.1",
        )
        # `online` goes out once the broker has confirmed our subscriptions, so whoever waits
        # for it can publish right away without racing our SUBSCRIBE.
        topics = [(t, 1) if isinstance(t, str) else t for t in self._subscriptions]
        _, self._subscribe_mid = client.subscribe(topics)
        if self.broker_drops is not None:
            # Separately, QoS 0: a broker whose ACL refuses $SYS must not fail the real subscription.
            client.subscribe(BROKER_DROPPED_TOPIC, qos=0)
        if self._on_connected is not None and self._calls is not None:
            session_present = bool(getattr(flags, "session_present", True))
            self._calls.post(self._on_connected, session_present)

    def _recreate_client(self) -> None:
        old = self._client
        old.loop_stop()
        self._client = self._make_client()
        self._client.connect_async(
            self._settings.host, self._settings.port, self._settings.keepalive_s, **self._connect_kwargs()
        )
        self._client.loop_start()

    def _handle_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        self._subscribed.clear()
        if was_connected:
            self.counters.disconnects += 1
            if not self._closing:
                log.warning("mqtt: disconnected (%s); reconnecting", reason_code)
        elif not self._closing and not self._refused:  # a refusal already said why
            message = f"cannot reach broker {self._settings.host}:{self._settings.port} ({reason_code})"
            if message != self._last_error:
                log.warning("mqtt: %s; retrying with backoff", message)
            self._last_error = message

    def _handle_subscribe(self, client: Any, userdata: Any, mid: int, reason_codes: Any, properties: Any) -> None:
        if mid != self._subscribe_mid:
            return
        refused = [str(code) for code in reason_codes if getattr(code, "is_failure", False)]
        if refused:
            log.error("mqtt: the broker refused a subscription (%s); check its ACL", ", ".join(refused))
        client.publish(self._status_topic, "online", qos=1, retain=True)
        self._subscribed.set()

    def _handle_connect_fail(self, client: Any, userdata: Any) -> None:
        """The TCP connection or the TLS handshake failed (paho logs the exception itself)."""
        tls = " or the TLS handshake (check tls_ca_file and the server certificate)" if self._settings.tls else ""
        message = f"cannot connect to broker {self._settings.host}:{self._settings.port}: the connection{tls} failed"
        if message != self._last_error:
            log.error("mqtt: %s; retrying with backoff", message)
        self._last_error = message

    def _handle_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        self._acked.append(mid)
        if self._waker is not None:
            self._waker.wake()
