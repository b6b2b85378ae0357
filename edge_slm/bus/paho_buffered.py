"""A paho client that reads its TCP socket in 64 KiB gulps.

paho reads every packet with two to four `recv` calls (the type byte, each length byte, the
body) and one `select` per packet: at telemetry rates those syscalls are most of its network
thread. Here a plain TCP socket gets a read buffer; `pending()` tells paho's loop that bytes are
buffered (paho asks TLS sockets the same question, so its loop already handles it), and
`loop_read` goes on while whole packets are buffered. TLS, WebSocket and Unix-socket
transports are left exactly as paho makes them. Inbound messages go straight to `on_message`:
the adapter registers no per-topic callbacks, so paho's topic matcher (7% of its thread) is
skipped. On MQTT 5, a QoS 0/1 PUBLISH that carries no properties (every telemetry message) is
decoded here without building paho's empty `Properties` object, a quarter of the thread's time;
`message.properties` is then None. Anything else (properties, QoS 2, topic aliases) is paho's.

Every TCP connection sends at once (TCP_NODELAY), which paho does not set.

These overrides use paho 2.x internals (`_create_socket`, `_sock`, `_handle_on_message`,
`_handle_publish`, `_in_packet`, `_protocol`, `_manual_ack`, `_send_puback`);
pyproject pins paho-mqtt below 3, and tests/unit/test_ingest_handoff.py exercises them.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import paho.mqtt.client as mqtt

READ_SIZE = 65536
MAX_PACKETS_PER_READ = 256  # then paho's loop runs once (writes, keepalive) before reading on


class BufferedSocket:
    """Wraps a connected non-blocking socket; everything but `recv` and `pending` is the socket's."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buffer = b""
        self._pos = 0

    def recv(self, bufsize: int) -> bytes:
        if self._pos >= len(self._buffer):
            data = self._sock.recv(max(bufsize, READ_SIZE))  # BlockingIOError / b"" (EOF) go to paho
            if len(data) <= bufsize:
                self._buffer, self._pos = b"", 0
                return data
            self._buffer, self._pos = data, 0
        end = self._pos + bufsize
        chunk = self._buffer[self._pos : end]
        self._pos = min(end, len(self._buffer))
        return chunk

    def pending(self) -> int:
        return len(self._buffer) - self._pos

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _no_delay(sock: Any) -> None:
    """Send each packet at once (TCP_NODELAY). paho leaves Nagle's algorithm on: an alert written right
    after a small unacknowledged PUBACK then waited for the broker's delayed TCP ACK, about 40 ms on Linux
    (alert latency p50 49 ms on a quiet bus in tools/bench_ingest.py)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass  # not a TCP socket (a Unix socket, a WebSocket wrapper): nothing to tune


class BufferedClient(mqtt.Client):
    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        _no_delay(sock)
        if getattr(self, "_ssl", False) or getattr(self, "_transport", "tcp") != "tcp":
            return sock
        return BufferedSocket(sock)

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        rc = super().loop_read(max_packets)
        sock = self._sock
        if not isinstance(sock, BufferedSocket):
            return rc
        buffered: BufferedSocket = sock
        budget = MAX_PACKETS_PER_READ
        while rc == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS and budget:
            if not buffered.pending() or self._sock is not sock:  # drained, or reconnected
                break
            rc = super().loop_read(max_packets)
            budget -= 1
        return rc

    def _handle_publish(self) -> mqtt.MQTTErrorCode:
        if self._protocol != mqtt.MQTTv5:
            return super()._handle_publish()
        header: int = self._in_packet["command"]
        packet = self._in_packet["packet"]
        qos = (header & 0x06) >> 1
        topic_end = 2 + int.from_bytes(packet[0:2], "big")
        props_at = topic_end + (2 if qos else 0)
        if qos == 2 or topic_end == 2 or len(packet) <= props_at or packet[props_at] != 0:
            return super()._handle_publish()  # QoS 2, a topic alias, properties or a short packet
        message = mqtt.MQTTMessage(mid=int.from_bytes(packet[topic_end:props_at], "big") if qos else 0,
                                   topic=bytes(packet[2:topic_end]))  # fmt: skip
        message.dup = bool(header & 0x08)
        message.qos = qos
        message.retain = bool(header & 0x01)
        message.properties = None
        message.payload = bytes(packet[props_at + 1 :])
        message.timestamp = time.monotonic()
        self._handle_on_message(message)
        if qos == 0 or self._manual_ack:
            return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
        return self._send_puback(message.mid)

    def _handle_on_message(self, message: mqtt.MQTTMessage) -> None:
        on_message = self.on_message
        if on_message is None:
            return
        with self._in_callback_mutex:
            try:
                on_message(self, self._userdata, message)
            except Exception as err:  # as paho does
                self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                if not self.suppress_exceptions:
                    raise
