#!/usr/bin/env python3
"""Speech output: time from a reply to its first audio sample, and the real-time factor, for Piper
and espeak-ng.

For each synthesizer and reply: `first audio` is the time from queueing the text to handing the first
sample to the output device (through a private PulseAudio null sink when pulseaudio is installed,
else an in-memory sink: add the device latency then); `whole` is the time to synthesize the whole
reply, which a non-streaming speaker would wait before its first sample (the baseline, measured in
the same run); RTF is the synthesis time over the audio's length (below 1: faster than real time).

    nice -n 10 python tools/bench_speech.py [--runs 5] [--threads 1] [--no-device]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from edge_slm.voice.speaker import SoundDeviceSink, Speaker, Utterance
from edge_slm.voice.speech_out import EspeakSpeech, PiperSpeech, SpeechOutput, clean_for_speech

REPLIES = {
    "short": "Calling mom.",
    "medium": "The nearest charging station is EnBW Sendlinger Tor, 1.2 kilometers away.",
    "long": "Warning: engine coolant at 118 °C. Stop safely when you can. "
    "The nearest mechanic is Auto Service Schmidt, 2.4 kilometers away.",
}


class MemorySink:
    """Takes audio as fast as it comes (no device): first-audio time without the device's open/latency."""

    latency_s = 0.0

    def open(self, sample_rate_hz: int) -> None:
        pass

    def write(self, pcm: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def measure(speech: SpeechOutput, text: str, runs: int, use_device: bool) -> dict[str, float]:
    text = clean_for_speech(text)
    speaker = Speaker(speech, (lambda: SoundDeviceSink("pulse")) if use_device else MemorySink)
    first_ms: list[float] = []
    whole_ms: list[float] = []
    rtf: list[float] = []
    audio_s = 0.0
    for _ in range(runs):
        started = time.monotonic()
        samples = sum(len(pcm) // 2 for pcm in speech.synthesize(text))
        whole = time.monotonic() - started
        audio_s = samples / speech.sample_rate_hz
        whole_ms.append(whole * 1000)
        rtf.append(whole / audio_s)
        done = speaker.speak_now(Utterance(text, "reply"))
        if done.error:
            raise SystemExit(f"{speech.name}: {done.error}")
        first_ms.append(done.first_audio_ms)
    return {
        "audio_s": audio_s,
        "first_p50_ms": statistics.median(first_ms),
        "first_max_ms": max(first_ms),
        "whole_p50_ms": statistics.median(whole_ms),
        "rtf_p50": statistics.median(rtf),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads for Piper")
    parser.add_argument("--no-device", action="store_true", help="in-memory sink instead of a PulseAudio null sink")
    args = parser.parse_args()

    with ExitStack() as stack:
        use_device = False
        if not args.no_device:
            from audio_fixtures import PulseServer, pulseaudio_available

            if pulseaudio_available():
                stack.enter_context(PulseServer())
                use_device = True
        print(f"output: {'PulseAudio null sink through PortAudio (pulse)' if use_device else 'in-memory sink'}")

        engines: list[tuple[str, SpeechOutput]] = []
        t = time.monotonic()
        engines.append(("espeak-ng", EspeakSpeech()))
        print(f"espeak-ng ready in {(time.monotonic() - t) * 1000:.0f} ms")
        t = time.monotonic()
        piper = PiperSpeech(threads=args.threads)
        print(f"piper ({piper.voice_name}, {args.threads} thread(s)) loaded in {(time.monotonic() - t) * 1000:.0f} ms")
        engines.append(("piper", piper))
        for _, speech in engines:  # warm-up: the daemon's speaker does this at start
            for _ in speech.synthesize("OK."):
                pass

        header = f"{'engine':<10} {'reply':<7} {'audio s':>7} {'first p50':>10} {'first max':>10} {'whole p50':>10}"
        print(f"\n{header} {'first/whole':>11} {'RTF':>6}")
        for name, speech in engines:
            for label, text in REPLIES.items():
                m = measure(speech, text, args.runs, use_device)
                print(
                    f"{name:<10} {label:<7} {m['audio_s']:7.2f} {m['first_p50_ms']:8.0f}ms {m['first_max_ms']:8.0f}ms "
                    f"{m['whole_p50_ms']:8.0f}ms {m['first_p50_ms'] / m['whole_p50_ms']:11.2f} {m['rtf_p50']:6.3f}"
                )
    print("\nfirst: reply queued -> first sample handed to the device; whole: synthesizing the whole reply first")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
