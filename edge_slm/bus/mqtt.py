"""The MQTT adapter: the only module that imports paho-mqtt.

paho runs its network loop on its own thread. Its callbacks only hand data to the asyncio
loop: inbound messages go into a bounded deque (one wake-up per burst, not per message,
which keeps ingest cheap), connection events and PUBACKs are scheduled with
`call_soon_threadsafe`. Telemetry is acknowledged manually, after the daemon has judged it,
so a message that arrives just before a crash is redelivered by the broker.
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

from edge_slm.config import MqttSettings
from edge_slm.errors import StartupError

log = logging.getLogger(__name__)

# CONNACK reason codes that mean "this broker does not speak MQTT 5" (v3 rc 1 / v5 0x84).
_UNSUPPORTED_PROTOCOL = {1, 132}
BACKPRESSURE_WAIT_S = 5.0


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


class MqttBus:
    """Connects, keeps connecting, subscribes, publishes, and hands inbound messages over."""

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        status_topic: str,
        subscriptions: Sequence[str | tuple[str, int]],  # a topic (QoS 1) or (topic, QoS)
        on_connected: Callable[[bool], None] | None = None,
        on_published: Callable[[int], None] | None = None,
    ) -> None:
        self._settings = settings
        self._client_id = client_id
        self._status_topic = status_topic
        self._subscriptions = subscriptions
        self._on_connected = on_connected
        self._on_published = on_published
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: collections.deque[InboundMessage] = collections.deque()
        self._inbox_event: asyncio.Event | None = None
        self._wake_pending = False
        self._wake_lock = threading.Lock()
        self._client: Any = None
        self._use_v5 = settings.protocol in ("auto", "5")
        self._connected = threading.Event()
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
        self._client = self._make_client()
        self._client.connect_async(
            self._settings.host, self._settings.port, self._settings.keepalive_s, **self._connect_kwargs()
        )
        self._client.loop_start()

    def _make_client(self) -> Any:
        mqtt = self._mqtt
        s = self._settings
        protocol = mqtt.MQTTv5 if self._use_v5 else mqtt.MQTTv311
        kwargs: dict[str, Any] = {"client_id": self._client_id, "protocol": protocol, "manual_ack": True}
        if not self._use_v5:
            kwargs["clean_session"] = s.clean_start
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
        # paho logs every publish attempted while disconnected at ERROR; this adapter reports
        # connection state itself, so paho's own lines are for debugging only.
        paho_log = logging.getLogger("edge_slm.bus.paho")
        if not log.isEnabledFor(logging.DEBUG):
            paho_log.setLevel(logging.CRITICAL)
        client.enable_logger(paho_log)
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
        return {"clean_start": self._settings.clean_start, "properties": props}

    def stop(self, timeout_s: float = 3.0) -> None:
        """Publish `offline`, disconnect cleanly (so the Last Will is not sent) and stop."""
        if self._client is None:
            return
        self._closing = True
        try:
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
        if message.qos > 0 and self._client is not None:
            try:
                self._client.ack(message.mid, message.qos)
            except (ValueError, RuntimeError, OSError) as err:
                log.debug("mqtt: ack failed: %s", err)

    # -- inbound ------------------------------------------------------------------------

    async def next_batch(self, max_items: int = 500) -> list[InboundMessage]:
        """Wait for inbound messages and take up to `max_items` of them."""
        assert self._inbox_event is not None
        while not self._inbox:
            self._inbox_event.clear()
            with self._wake_lock:
                self._wake_pending = False
            if self._inbox:
                break
            await self._inbox_event.wait()
        batch: list[InboundMessage] = []
        taken_bytes = 0
        while self._inbox and len(batch) < max_items:
            message = self._inbox.popleft()
            taken_bytes += len(message.payload)
            batch.append(message)
        with self._bytes_lock:
            self._inbox_bytes -= taken_bytes
        if (
            len(self._inbox) < self._settings.inbound_queue_size // 2
            and self._inbox_bytes < self._settings.inbound_queue_bytes // 2
        ):
            self._space.set()
        return batch

    # -- paho callbacks (network thread) -------------------------------------------------

    def _handle_message(self, client: Any, userdata: Any, message: Any) -> None:
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
        with self._wake_lock:
            if self._wake_pending:
                return
            self._wake_pending = True
        if self._loop is not None and self._inbox_event is not None:
            try:
                self._loop.call_soon_threadsafe(self._inbox_event.set)
            except RuntimeError:
                pass  # loop closed during shutdown

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
        if self._on_connected is not None and self._loop is not None:
            session_present = bool(getattr(flags, "session_present", True))
            self._loop.call_soon_threadsafe(self._on_connected, session_present)

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

    def _handle_connect_fail(self, client: Any, userdata: Any) -> None:
        """The TCP connection or the TLS handshake failed (paho logs the exception itself)."""
        tls = " or the TLS handshake (check tls_ca_file and the server certificate)" if self._settings.tls else ""
        message = f"cannot connect to broker {self._settings.host}:{self._settings.port}: the connection{tls} failed"
        if message != self._last_error:
            log.error("mqtt: %s; retrying with backoff", message)
        self._last_error = message

    def _handle_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        if self._on_published is not None and self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._on_published, mid)
            except RuntimeError:
                pass
