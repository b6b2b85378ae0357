"""Model work pooled across boards through the broker (MQTT 5 request/response).

A node with `model.mode = "pool"` sends its model requests (alert explanations, model-tier
intents) to `{prefix}/llm/request` with a response topic and correlation data; `edge-slm worker`
processes take them through a shared subscription (`$share/edge-slm-llm/...`: the broker hands
each request to one worker) and answer on the response topic. The pool is a transport for
`LlmEngine` requests, not a second engine: the explainer and the intent tiers, their deadlines and
their fallbacks (knowledge text, grammar) are the same as with a local model.

- Requests are idempotent by id: a worker answers a repeated id from its memory of recent answers
  and ignores one it is still working on, so the node never gets two different explanations.
- A worker killed mid-request loses nothing: the node sends the request once more when half its
  deadline has passed without an answer (another worker takes it), then gives up at the deadline
  (ModelTimeout -> the caller's fallback), and counts each case.
- Workers publish their capacity, retained, on `{prefix}/llm/workers/{node}`.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any

from edge_slm.errors import DecodeError, ModelTimeout, ModelUnavailable
from edge_slm.llm.api import GenerationRequest, GenerationResult, Priority

log = logging.getLogger(__name__)

SHARE_GROUP = "edge-slm-llm"
MAX_REQUEST_BYTES = 256 * 1024
RECENT_ANSWERS = 1000
MAX_REQUEST_DEADLINE_S = 600.0  # a request may not ask a worker to keep it longer than this

# (topic, payload, response_topic, correlation) -> mid or None when it could not be sent now
PoolPublish = Callable[[str, bytes, str, bytes], "int | None"]


def request_topic(prefix: str) -> str:
    return f"{prefix}/llm/request"


def shared_request_filter(prefix: str) -> str:
    return f"$share/{SHARE_GROUP}/{request_topic(prefix)}"


def response_topic(prefix: str, node: str) -> str:
    return f"{prefix}/llm/response/{node}"


def capacity_topic(prefix: str, node: str) -> str:
    return f"{prefix}/llm/workers/{node}"


# -- wire format -------------------------------------------------------------------------------


def encode_request(request_id: str, request: GenerationRequest, deadline_ts: float) -> bytes:
    return json.dumps(
        {
            "id": request_id,
            "system": request.system,
            "user": request.user,
            "few_shot": [list(pair) for pair in request.few_shot],
            "json_schema": request.json_schema,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "priority": int(request.priority),
            "deadline_ts": deadline_ts,
        },
        ensure_ascii=False,
    ).encode()


def decode_request(payload: bytes) -> tuple[str, GenerationRequest, float]:
    """Raises DecodeError for anything that is not a well-formed request."""
    if len(payload) > MAX_REQUEST_BYTES:
        raise DecodeError(f"model request larger than {MAX_REQUEST_BYTES} bytes")
    try:
        doc = json.loads(payload)
        request_id = str(doc["id"])[:128]
        few_shot = tuple((str(u), str(a)) for u, a in doc.get("few_shot") or ())
        schema = doc.get("json_schema")
        request = GenerationRequest(
            system=str(doc["system"]),
            user=str(doc["user"]),
            json_schema=schema if isinstance(schema, dict) else None,
            max_tokens=max(1, min(int(doc.get("max_tokens", 96)), 1024)),
            temperature=float(doc.get("temperature", 0.0)),
            priority=Priority(int(doc.get("priority", Priority.EXPLANATION))),
            few_shot=few_shot,
        )
        deadline_ts = float(doc["deadline_ts"])
    except (ValueError, KeyError, TypeError) as err:
        raise DecodeError(f"not a model request: {err}") from err
    if not request_id:
        raise DecodeError("model request without an id")
    if not math.isfinite(deadline_ts):
        raise DecodeError("model request deadline is not a finite time")
    deadline_ts = min(deadline_ts, time.time() + MAX_REQUEST_DEADLINE_S)
    return request_id, request, deadline_ts


def encode_result(request_id: str, worker: str, result: GenerationResult | None, error: str = "") -> bytes:
    doc: dict[str, Any] = {"id": request_id, "worker": worker, "ok": result is not None, "error": error}
    if result is not None:
        doc.update(
            text=result.text,
            data=result.data,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            elapsed_s=result.elapsed_s,
            queued_s=result.queued_s,
        )
    return json.dumps(doc, ensure_ascii=False).encode()


# -- the node's side ---------------------------------------------------------------------------


@dataclass
class _Pending:
    request: GenerationRequest
    future: Future[GenerationResult]
    payload: bytes
    sent_ts: float
    deadline_ts: float
    attempts: int = 1


@dataclass
class PoolCounters:
    sent: int = 0
    answered: int = 0  # a worker's answer arrived in time (a result, or the error it ran into)
    retried: int = 0
    timed_out: int = 0
    failed: int = 0
    late_or_duplicate: int = 0
    malformed: int = 0


class PooledEngine:
    """An `LlmEngine` whose requests are served by the worker pool. Thread-safe."""

    def __init__(
        self,
        publish: PoolPublish,
        prefix: str,
        node: str,
        *,
        clock: Callable[[], float] = time.time,
        check_interval_s: float = 0.1,
    ) -> None:
        self._publish = publish
        self._request_topic = request_topic(prefix)
        self.response_topic = response_topic(prefix, node)
        self._clock = clock
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.stats = PoolCounters()
        self._watch = threading.Thread(target=self._watch_deadlines, args=(check_interval_s,), daemon=True)
        self._watch.start()

    @property
    def model_name(self) -> str:
        return "pool"

    def submit(self, request: GenerationRequest) -> Future[GenerationResult]:
        future: Future[GenerationResult] = Future()
        if self._closed.is_set():
            future.set_exception(ModelUnavailable("the model pool client is shut down"))
            return future
        request_id = uuid.uuid4().hex
        now = self._clock()
        deadline_ts = now + request.deadline_s
        payload = encode_request(request_id, request, deadline_ts)
        with self._lock:
            self._pending[request_id] = _Pending(request, future, payload, now, deadline_ts)
            self.stats.sent += 1
        self._send(request_id, payload)
        return future

    def generate(self, request: GenerationRequest) -> GenerationResult:
        # the deadline watcher settles every request; the margin only guards against a bug there
        return self.submit(request).result(timeout=request.deadline_s + 5.0)

    def prepare_prefix(self, system: str, few_shot: Sequence[tuple[str, str]] = ()) -> object | None:
        return None  # each worker keeps its own prefix cache

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {**vars(self.stats), "pending": len(self._pending)}

    def _send(self, request_id: str, payload: bytes) -> None:
        self._publish(self._request_topic, payload, self.response_topic, request_id.encode())
        # not connected: the retry at half the deadline sends it again

    def on_response(self, payload: bytes, correlation: bytes = b"") -> None:
        """An answer from a worker (or anyone on the bus: everything is checked before the request
        it names is taken off the pending list, so a malformed answer leaves it to its deadline)."""
        try:
            doc = json.loads(payload)
            request_id = str(doc.get("id") or correlation.decode(errors="replace"))
            ok = bool(doc.get("ok"))
            data = doc.get("data")
            result = GenerationResult(
                text=str(doc.get("text", "")),
                data=data if isinstance(data, dict) else None,
                prompt_tokens=int(doc.get("prompt_tokens", 0)),
                completion_tokens=int(doc.get("completion_tokens", 0)),
                elapsed_s=float(doc.get("elapsed_s", 0.0)),
                queued_s=float(doc.get("queued_s", 0.0)),
            )
        except (ValueError, TypeError, AttributeError):
            log.debug("pool: unreadable response dropped")
            self.stats.malformed += 1
            return
        with self._lock:
            pending = self._pending.pop(request_id, None)
            if pending is None:
                self.stats.late_or_duplicate += 1
                return
            self.stats.answered += 1
            if not ok:
                self.stats.failed += 1
        if not ok:
            _settle(pending.future, error=ModelUnavailable(f"pool worker failed: {str(doc.get('error', '?'))[:200]}"))
        else:
            _settle(pending.future, result)

    def _watch_deadlines(self, interval_s: float) -> None:
        while not self._closed.wait(interval_s):
            now = self._clock()
            expired: list[_Pending] = []
            resend: list[tuple[str, bytes]] = []
            with self._lock:
                for request_id, p in list(self._pending.items()):
                    if now >= p.deadline_ts:
                        expired.append(self._pending.pop(request_id))
                        self.stats.timed_out += 1
                    elif p.attempts == 1 and now >= p.sent_ts + (p.deadline_ts - p.sent_ts) / 2:
                        p.attempts += 1
                        self.stats.retried += 1
                        resend.append((request_id, p.payload))
            for request_id, payload in resend:
                self._send(request_id, payload)
            for p in expired:
                _settle(p.future, error=ModelTimeout(f"no pool worker answered within {p.request.deadline_s:g} s"))

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
        for p in pending:
            _settle(p.future, error=ModelUnavailable("the model pool client was shut down"))


def _settle(
    future: Future[GenerationResult], result: GenerationResult | None = None, error: Exception | None = None
) -> None:
    """Its caller may have cancelled the future (the explainer does past its deadline): then there is
    nothing to settle, and the deadline watcher (or the bus callback) must not die of it."""
    try:
        if result is not None:
            future.set_result(result)
        else:
            future.set_exception(error)
    except InvalidStateError:
        pass


# -- the worker's side -------------------------------------------------------------------------


class RecentAnswers:
    """What a worker remembers per request id: in progress, or the answer it gave (bounded)."""

    def __init__(self, limit: int = RECENT_ANSWERS) -> None:
        self._limit = limit
        self._answers: collections.OrderedDict[str, bytes | None] = collections.OrderedDict()

    def start(self, request_id: str) -> tuple[bool, bytes | None]:
        """(is new, the earlier answer if there is one)."""
        if request_id in self._answers:
            return False, self._answers[request_id]
        self._answers[request_id] = None
        while len(self._answers) > self._limit:
            self._answers.popitem(last=False)
        return True, None

    def finish(self, request_id: str, answer: bytes) -> None:
        if request_id in self._answers:
            self._answers[request_id] = answer
