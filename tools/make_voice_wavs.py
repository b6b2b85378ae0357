"""Make test/benchmark WAVs: espeak-ng speech with known speech boundaries, optionally over steady noise.

    python tools/make_voice_wavs.py OUT_DIR [--noise] [--text-ko "..."]

Writes 16 kHz mono 16-bit WAVs and OUT_DIR/manifest.json: {file: {"text", "lang", "speech_start_s",
"speech_end_s", "duration_s", "noise", "snr_db"}}. Speech boundaries are measured on the clean speech
(first/last 10 ms window above -40 dBFS), then shifted by the leading silence. Noise is synthesised by
sox (white, pink, brown: steady, like a fan, road or engine) and mixed at the given SNR (speech power
measured over the speech only). Needs espeak-ng and sox on PATH.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

RATE_HZ = 16000
KO_PHRASES: tuple[str, ...] = ("음악 틀어 줘", "오늘 일정 알려 줘", "안녕하세요")
EN_PHRASES: tuple[str, ...] = ("take me home", "what is the traffic like")
NOISES: tuple[str, ...] = ("whitenoise", "pinknoise", "brownnoise")
SNRS_DB: tuple[float, ...] = (20.0, 10.0, 5.0)
NOISE_ONLY_S = 10.0


def have_tools() -> bool:
    return shutil.which("espeak-ng") is not None and shutil.which("sox") is not None


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, rate_hz: int = RATE_HZ) -> None:
    pcm = np.clip(np.rint(samples), -32768, 32767).astype(np.int16)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate_hz)
        wav.writeframes(pcm.tobytes())


def speak(text: str, lang: str, tmp: Path, speed_wpm: int = 140) -> np.ndarray:
    """espeak-ng speech at 16 kHz mono, as float samples."""
    raw, out = tmp / "raw.wav", tmp / "speech.wav"
    subprocess.run(["espeak-ng", "-v", lang, "-s", str(speed_wpm), "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", str(RATE_HZ), "-c", "1", "-b", "16", str(out)], check=True)
    return read_wav(out)


def speech_bounds(samples: np.ndarray, threshold_db: float = -40.0) -> tuple[float, float]:
    win = RATE_HZ // 100
    n = len(samples) // win
    frames = samples[: n * win].reshape(n, win) / 32768.0
    level = 10 * np.log10(np.mean(frames * frames, axis=1) + 1e-12)
    active = np.nonzero(level > threshold_db)[0]
    if not len(active):
        return 0.0, 0.0
    return float(active[0] * win / RATE_HZ), float((active[-1] + 1) * win / RATE_HZ)


def noise(kind: str, duration_s: float, tmp: Path) -> np.ndarray:
    out = tmp / f"{kind}.wav"
    subprocess.run(
        ["sox", "-n", "-r", str(RATE_HZ), "-c", "1", "-b", "16", str(out), "synth", f"{duration_s:.3f}", kind],
        check=True,
    )
    return read_wav(out)


def make_utterance(
    text: str, lang: str, tmp: Path, lead_s: float = 1.0, tail_s: float = 1.0
) -> tuple[np.ndarray, float, float]:
    speech = speak(text, lang, tmp)
    start, end = speech_bounds(speech)
    speech = speech[int(start * RATE_HZ) : int(end * RATE_HZ)]
    gain = 0.5 * 32767 / max(1.0, float(np.max(np.abs(speech))))  # peak at -6 dBFS
    samples = np.concatenate([np.zeros(int(lead_s * RATE_HZ)), speech * gain, np.zeros(int(tail_s * RATE_HZ))])
    return samples, lead_s, lead_s + len(speech) / RATE_HZ


def mix(samples: np.ndarray, start_s: float, end_s: float, kind: str, snr_db: float, tmp: Path) -> np.ndarray:
    n = noise(kind, len(samples) / RATE_HZ + 0.1, tmp)[: len(samples)]
    speech = samples[int(start_s * RATE_HZ) : int(end_s * RATE_HZ)]
    p_speech = float(np.mean(speech * speech))
    p_noise = float(np.mean(n * n)) or 1.0
    return samples + n * np.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10)))


def make_all(out_dir: Path, with_noise: bool = True, lead_s: float = 1.0, tail_s: float = 1.0) -> dict[str, dict]:
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        phrases = [(t, "ko") for t in KO_PHRASES] + [(t, "en") for t in EN_PHRASES]
        for i, (text, lang) in enumerate(phrases):
            samples, start, end = make_utterance(text, lang, tmp, lead_s, tail_s)
            name = f"{lang}{i}.wav"
            write_wav(out_dir / name, samples)
            entry = {
                "text": text,
                "lang": lang,
                "speech_start_s": start,
                "speech_end_s": end,
                "duration_s": len(samples) / RATE_HZ,
                "noise": "",
                "snr_db": None,
            }
            manifest[name] = entry
            if with_noise and i == 0:
                for kind in NOISES:
                    for snr in SNRS_DB:
                        noisy = f"{lang}{i}_{kind}_{int(snr)}db.wav"
                        write_wav(out_dir / noisy, mix(samples, start, end, kind, snr, tmp))
                        manifest[noisy] = {**entry, "noise": kind, "snr_db": snr}
        silence = np.zeros(3 * RATE_HZ)
        write_wav(out_dir / "silence.wav", silence)
        manifest["silence.wav"] = {
            "text": "",
            "lang": "",
            "speech_start_s": 0.0,
            "speech_end_s": 0.0,
            "duration_s": 3.0,
            "noise": "",
            "snr_db": None,
        }
        if with_noise:
            for kind in NOISES:
                name = f"noise_{kind}.wav"
                write_wav(out_dir / name, noise(kind, NOISE_ONLY_S, tmp) * 0.05)  # about -30 dBFS
                manifest[name] = {
                    "text": "",
                    "lang": "",
                    "speech_start_s": 0.0,
                    "speech_end_s": 0.0,
                    "duration_s": 4.0,
                    "noise": kind,
                    "snr_db": None,
                }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--no-noise", action="store_true", help="only the clean utterances and silence")
    args = parser.parse_args(argv)
    if not have_tools():
        print("espeak-ng and sox are needed", file=sys.stderr)
        return 2
    manifest = make_all(args.out_dir, with_noise=not args.no_noise)
    print(f"{len(manifest)} WAVs in {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
