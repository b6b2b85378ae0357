#!/usr/bin/env python3
"""Long fuzzing campaign (a benchmark, not a test) over every input the bus can send: telemetry
(codec, topics, detector, alert policy), transcripts (parser, action guard, grammar intents,
grounded replies from fuzzed nav facts), nav state and voice/listen (the push-to-talk gate); every
rejection goes through the dead-letter throttle. Random and mutated inputs, including invalid
UTF-8, huge payloads, deep nesting, NaN/Infinity, huge numbers, bidi overrides, dialer codes and
`+ # /` NUL in device ids. Any exception other than the parsers' own rejection is a crash, and so
is a broken invariant (a control character in a reply, a dialer code called, an action twice for
one transcript id, a push-to-talk window held open, dead letters over their budget). RSS and the
thread count are printed as it goes: they must stay flat.

    .venv/bin/python tools/fuzz.py --inputs 1000000 --seed 1
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
import traceback
from collections.abc import Callable

from edge_slm import metrics
from edge_slm.bus.deadletter import BURST_S, DeadLetterThrottle
from edge_slm.bus.topics import TopicError, Topics
from edge_slm.config import DetectSettings, IntentSettings, VoiceSettings
from edge_slm.detect.detector import Detector
from edge_slm.detect.policy import AlertPolicy
from edge_slm.detect.rules import load_rules
from edge_slm.errors import DecodeError
from edge_slm.intent.action_guard import ActionGuard, is_dialer_code
from edge_slm.intent.answer import answer
from edge_slm.intent.recognizer import IntentRecognizer
from edge_slm.intent.respond import Responder
from edge_slm.nav.state import NavStateStore
from edge_slm.telemetry.codec import decode_telemetry
from edge_slm.transcripts import parse_transcript
from edge_slm.voice.listener import VoiceListener

SEEDS = [
    b'{"ts": 1790000000.5, "signals": {"vibration_rms_mm_s": 9.3}}',
    b'{"signals": {"Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature": 120, "x": true}}',
    b'{"text": "take me home", "id": "a1"}',
    b'{"ts": 1e308, "signals": {"a": -1e308, "b": 1e-320}}',
]
NASTY = ["+", "#", "/", "\0", "\ud800", "\u202e", "\n", " ", "..", "*", "é", "💥"]
TRANSCRIPT_SEEDS = [
    b'{"text": "call mom", "id": "t1"}',
    b'{"text": "navigate to the airport"}',
    b'{"text": "take me to Shell Main Street", "id": 7}',
    b'{"text": "how long until we get there", "id": "eta"}',
    b'{"text": "any traffic on my route"}',
    b'{"text": "find a gas station nearby"}',
    b'{"text": "is everything ok with the car", "id": "s"}',
    b'{"text": "add lunch with Anna tomorrow at noon to my calendar"}',
    b'{"text": "call *#06#", "id": "code"}',
]
NAV_SEEDS = [
    b'{"destination": "Airport", "eta_s": 1260, "distance_m": 18400, "position": {"lat": 52.52, "lon": 13.4},'
    b' "traffic": [{"description": "Accident on A100", "delay_s": 300}]}',
    b'{"destination": null, "eta_s": 0, "distance_m": 0}',
    b"",
]
SPEAKABLE = "abcdefghijklmnopqrstuvwxyz 0123456789*#+,;.'"
BAD_CHARS = {chr(c) for c in range(32)} | {"\u202e", "\u202d", "\u2066", "\u200b", "\x7f"}


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randint(0, 5)
        pos = rng.randint(0, len(buf)) if buf else 0
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randint(0, 255)
        elif op == 1:
            buf[pos:pos] = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 8)))
        elif op == 2 and buf:
            del buf[pos : pos + rng.randint(1, 8)]
        elif op == 3:
            buf[pos:pos] = rng.choice(
                [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"[" * 50, b'"\\ud800"', b"\xff\xfe", b"null"]
            )
        elif op == 4:
            buf[pos:pos] = str(rng.choice([10**400, -(10**30), 2**63, 0.1])).encode()
        else:
            buf += buf[: rng.randint(0, len(buf))]
    return bytes(buf)


def random_doc(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randint(0, 7 if depth < 4 else 4)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 1e308, -1e-308, 2**70, rng.uniform(-1e6, 1e6)])
    if kind == 2:
        return "".join(rng.choice([*NASTY, "a", "b", "1"]) for _ in range(rng.randint(0, 12)))
    if kind in (3, 4):
        return float(rng.choice(["nan", "inf", "-inf"]))
    if kind == 5:
        return [random_doc(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {str(random_doc(rng, 5)): random_doc(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def nasty_text(rng: random.Random, max_chars: int) -> str:
    return "".join(rng.choice([*NASTY, *SPEAKABLE]) for _ in range(rng.randint(0, max_chars)))


def one_input(rng: random.Random, huge_fraction: float = 0.1) -> tuple[str, bytes]:
    if rng.random() < 0.6:
        device = f"pump-{rng.randint(0, 50)}"
    else:
        device = "".join(rng.choice([*NASTY, "pump", "-", "1"]) for _ in range(rng.randint(0, 6)))
    choice = rng.randint(0, 7) if rng.random() >= huge_fraction * 5 else rng.randint(8, 9)
    if rng.random() < 0.3:  # well-formed: many series, extreme values, hostile names (detector and policy state)
        names = [
            "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature",
            "vibration_rms_mm_s",
            f"sig{rng.randint(0, 5000)}",
            nasty_text(rng, 60) or "x",
        ]
        signals = {rng.choice(names): rng.choice([rng.gauss(50, 30), 1e300, -1e300, True]) for _ in range(8)}
        ts = 1_790_000_000.0 + rng.uniform(-1e6, 2e5)
        return f"edge/telemetry/{device}", json.dumps({"ts": ts, "signals": signals}).encode()
    if choice < 4:
        payload = mutate(rng, rng.choice(SEEDS))
    elif choice < 8:
        doc = {"ts": random_doc(rng), "signals": random_doc(rng)} if rng.random() < 0.7 else random_doc(rng)
        payload = json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")
    elif choice == 8:
        payload = b"[" * rng.randint(1000, 200_000)
    else:
        payload = b'{"signals": {"a": 1}, "pad": "' + b"x" * rng.randint(100_000, 10_000_000) + b'"}'
    return f"edge/telemetry/{device}", payload


def transcript_input(rng: random.Random) -> bytes:
    choice = rng.randint(0, 5)
    if choice < 2:
        return mutate(rng, rng.choice(TRANSCRIPT_SEEDS))
    if choice == 2:  # a command with hostile slot text: bidi, controls, dialer codes, long values
        verb = rng.choice(["call", "navigate to", "take me to", "add", "find a"])
        slot = "".join(rng.choice([*NASTY, *SPEAKABLE]) for _ in range(rng.randint(1, 400)))
        doc: object = {"text": f"{verb} {slot}", "id": rng.choice(["dup", f"{rng.random():.9f}", None])}
    elif choice == 3:
        doc = {"text": random_doc(rng), "id": random_doc(rng)}
    elif choice == 4:
        doc = random_doc(rng)
    else:
        doc = {
            "text": rng.choice(["call mom", "navigate home"]),
            "id": rng.choice(["a", "b", 1, *(f"{rng.random():.9f}" for _ in range(3))]),
        }
    return json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")


def nav_input(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.3:
        return mutate(rng, rng.choice(NAV_SEEDS))
    if roll < 0.7:  # well-formed, with hostile strings and extreme but valid numbers
        good = {
            "destination": rng.choice([None, nasty_text(rng, 400)]),
            "eta_s": rng.choice([0, 59.9, 3600, 1e7, rng.uniform(0, 1e5)]),
            "distance_m": rng.choice([0, 99.5, 1e9, rng.uniform(0, 1e6)]),
            "position": {"lat": rng.uniform(-90, 90), "lon": rng.uniform(-180, 180)},
            "traffic": [
                {"description": nasty_text(rng, 80), "delay_s": rng.uniform(0, 1e4)} for _ in range(rng.randint(0, 120))
            ],
        }
        return json.dumps(good).encode()
    traffic = [{"description": random_doc(rng), "delay_s": random_doc(rng)} for _ in range(rng.randint(0, 3))]
    doc = {
        "destination": random_doc(rng),
        "eta_s": random_doc(rng),
        "distance_m": random_doc(rng),
        "position": {"lat": random_doc(rng), "lon": random_doc(rng)} if rng.random() < 0.7 else random_doc(rng),
        "traffic": traffic if rng.random() < 0.7 else random_doc(rng),
    }
    return json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")


class Invariant(AssertionError):
    """A property that must hold for any input (counted as a crash)."""


def check(condition: bool, what: str) -> None:
    if not condition:
        raise Invariant(what)


class Campaign:
    def __init__(self, rng: random.Random, huge_fraction: float) -> None:
        self.rng = rng
        self.huge_fraction = huge_fraction
        self.topics = Topics("edge", "fuzz")
        self.detector = Detector(load_rules(), DetectSettings(max_tracked_series=5000))
        self.policy = AlertPolicy(30.0)
        self.nav = NavStateStore()
        self.recognizer = IntentRecognizer(IntentSettings(model_fallback=False), None)
        self.responder = Responder(self.nav, None, lambda: self.policy.firing(None), "")
        self.clock_s = 1_790_000_000.0
        self.guard = ActionGuard(max_age_s=20.0, per_kind_limit=5, per_kind_window_s=60.0, clock=lambda: self.clock_s)
        self.acted_at: dict[str, int] = {}  # transcript id -> admission number when it acted
        self.admitted = 0
        voice = VoiceSettings(activation="push", listen_max_per_min=6)
        self.listener = VoiceListener(voice, [], lambda t: None, lambda c, s: None)
        self.deadletters = DeadLetterThrottle(10.0, 64 * 1024.0, 1024)
        self.started = time.monotonic()
        self.accepted = self.rejected = self.answered = 0
        self.targets: list[tuple[str, Callable[[], None]]] = [
            ("telemetry", self.telemetry),
            ("transcript", self.transcript),
            ("nav", self.nav_state),
            ("listen", self.listen),
        ]

    def reject(self, topic: str, payload: bytes, reason: str) -> None:
        self.rejected += 1
        self.deadletters.admit(topic, payload, reason)

    def telemetry(self) -> None:
        topic, payload = one_input(self.rng, self.huge_fraction)
        try:
            device = self.topics.device_from_telemetry_topic(topic)
            sample = decode_telemetry(device, payload, 1_790_000_000.0).sample
            for finding in self.detector.process(sample):
                self.policy.apply(finding)
            self.accepted += 1
        except (TopicError, DecodeError) as err:
            self.reject(topic, payload, str(err))
        try:
            parse_transcript(payload, 0.0)
        except DecodeError:
            pass

    def transcript(self) -> None:
        payload = transcript_input(self.rng)
        self.clock_s += self.rng.choice([0.0, 0.5, 3.0, 30.0])
        try:
            transcript = parse_transcript(payload, self.clock_s - self.rng.choice([0.0, 1.0, 60.0]))
        except DecodeError as err:
            self.reject("edge/voice/transcript", payload, str(err))
            return
        refused = self.guard.admit(transcript, retained=self.rng.random() < 0.05)
        if refused:
            self.reject("edge/voice/transcript", payload, refused)
            return
        self.accepted += 1
        self.answered += 1
        self.admitted += 1
        reply = answer(transcript, self.recognizer, self.responder)
        actions, _ = self.guard.filter_actions(transcript, reply.actions)
        texts = [reply.text, reply.transcript, *reply.intent.slots.values()]
        for action in actions:
            texts += action.payload.values()
            if action.kind == "call":
                check(not is_dialer_code(action.payload["contact"]), f"dialer code called: {action.payload!r}")
        check(not any(ch in BAD_CHARS for text in texts for ch in text), f"control/bidi char in reply: {texts!r}")
        check(all(len(v) <= 200 for v in reply.intent.slots.values()), "reply slot over 200 characters")
        if actions:
            # the guard remembers the last `remember_ids` admitted ids: within that window, one action per id
            before = self.acted_at.get(transcript.id)
            check(
                before is None or self.admitted - before > self.guard.remember_ids,
                f"second action for transcript id {transcript.id!r}",
            )
            self.acted_at[transcript.id] = self.admitted
            if len(self.acted_at) > 100_000:
                self.acted_at.clear()

    def nav_state(self) -> None:
        payload = nav_input(self.rng)
        if not payload.strip():
            self.nav.set(None)
            return
        try:
            self.nav.update(payload)
            self.accepted += 1
        except DecodeError as err:
            self.reject("edge/nav/state", payload, str(err))

    def listen(self) -> None:
        before = time.monotonic()
        self.listener.open_listen_window(self.rng.choice([None, 0.1, 8.0, 1e9]))
        held_s = self.listener._window_until - before
        check(held_s <= self.listener.settings.listen_window_s + 0.01, f"listen window held {held_s:.1f} s")
        opens = [t for t in self.listener._window_opens if before - t <= 60.0]
        check(len(opens) <= self.listener.settings.listen_max_per_min, "listen rate exceeded")

    def deadletter_budget_ok(self) -> None:
        elapsed_s = time.monotonic() - self.started
        budget = 64 * 1024.0 * (elapsed_s + BURST_S) + 4096
        check(self.deadletters.counters.published_bytes <= budget, "dead letters over their byte budget")


def _threads() -> int:
    return threading.active_count()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--targets", default="telemetry,transcript,nav,listen", help="comma-separated: telemetry transcript nav listen"
    )
    parser.add_argument(
        "--huge-fraction", type=float, default=0.02, help="share of telemetry inputs that are 0.2-10 MB payloads"
    )
    args = parser.parse_args()
    campaign = Campaign(random.Random(args.seed), args.huge_fraction)
    wanted = set(args.targets.split(","))
    targets = [(name, fn) for name, fn in campaign.targets if name in wanted]
    counts = dict.fromkeys((name for name, _ in targets), 0)
    crashes = 0
    rss_start_mb, threads_start = metrics.rss_bytes() / 1e6, _threads()
    rss_max_mb = rss_start_mb
    started = time.perf_counter()
    report_every = max(1, args.inputs // 10)
    for i in range(args.inputs):
        name, fn = targets[i % len(targets)]
        counts[name] += 1
        try:
            fn()
            if i % 1000 == 0:
                campaign.deadletter_budget_ok()
        except Exception:
            crashes += 1
            if crashes <= 5:
                traceback.print_exc()
                print(f"target: {name}", file=sys.stderr)
        if (i + 1) % report_every == 0:
            rss_mb = metrics.rss_bytes() / 1e6
            rss_max_mb = max(rss_max_mb, rss_mb)
            print(
                f"{i + 1:>9} inputs  {time.perf_counter() - started:7.1f} s  RSS {rss_mb:6.1f} MB  "
                f"threads {_threads()}  crashes {crashes}",
                flush=True,
            )
    elapsed = time.perf_counter() - started
    rss_end_mb = metrics.rss_bytes() / 1e6
    dl = campaign.deadletters.counters
    print(
        f"{args.inputs} inputs ({', '.join(f'{k} {v}' for k, v in counts.items())}) in {elapsed:.1f} s: "
        f"{campaign.accepted} accepted ({campaign.answered} transcripts answered), {campaign.rejected} rejected, "
        f"{crashes} crashes; "
        f"{campaign.detector.tracked_series} series tracked; dead letters {dl.published} published "
        f"({dl.published_bytes} bytes), {dl.suppressed} suppressed; action guard {campaign.guard.counters}"
    )
    print(
        f"RSS {rss_start_mb:.1f} MB at start, {rss_max_mb:.1f} MB max, {rss_end_mb:.1f} MB at end; "
        f"threads {threads_start} at start, {_threads()} at end"
    )
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
