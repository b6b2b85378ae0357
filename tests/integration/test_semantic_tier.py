"""The semantic tier with its real parts: all-MiniLM-L6-v2 converted from the installed wheel to GGUF,
run by llama.cpp in embedding mode; the CLI; and the daemon over a real Mosquitto broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge_slm.config import IntentSettings, SemanticSettings, Settings, load_settings
from edge_slm.intent.grammar import default_grammar
from edge_slm.intent.recognizer import IntentRecognizer
from edge_slm.intent.schema import ACTION_INTENTS
from edge_slm.intent.semantic import SemanticTier, build_semantic_tier
from edge_slm.llm.embedding import LlamaCppEncoder, encoder_path
from edge_slm.llm.models import KNOWN_MODELS, recorded_sha256
from tests.daemon_fixtures import InProcessDaemon, daemon_settings
from tests.mqtt_fixtures import Broker, Recorder, publisher

BLIND = Path(__file__).resolve().parents[1] / "data" / "commands_blind_asr.jsonl"


def _settings(state_dir: Path) -> Settings:
    return load_settings(None, "generic", environ={}, cli_overrides={"state_dir": str(state_dir)})


@pytest.fixture(scope="session")
def semantic_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One state dir for the session: the encoder is converted from the wheel into its model cache once."""
    state = tmp_path_factory.mktemp("semantic-state")
    path = encoder_path(_settings(state))
    assert path.parent == state / "models" and path.name == KNOWN_MODELS["all-minilm-l6-v2"].file_name
    return state


@pytest.fixture(scope="session")
def tier(semantic_state: Path) -> Iterator[SemanticTier]:
    built = build_semantic_tier(_settings(semantic_state), default_grammar())
    assert built is not None and built.warm_up(), built.failed if built else "disabled"
    yield built
    built.close()


def test_registry_builds_the_encoder_from_the_wheel_once(semantic_state: Path) -> None:
    path = encoder_path(_settings(semantic_state))
    assert recorded_sha256(path) is not None  # recorded at conversion, like a pulled model
    mtime = path.stat().st_mtime_ns
    assert encoder_path(_settings(semantic_state)) == path and path.stat().st_mtime_ns == mtime  # cached


def test_converted_encoder_follows_llama_cpp_bert_conventions(semantic_state: Path) -> None:
    import gguf

    path = encoder_path(_settings(semantic_state))
    reader = gguf.GGUFReader(path)
    arch = reader.get_field("general.architecture")
    assert arch is not None and bytes(arch.parts[arch.data[0]]).decode() == "bert"
    pooling = reader.get_field("bert.pooling_type")
    assert pooling is not None and int(pooling.parts[pooling.data[0]][0]) == int(gguf.PoolingType.MEAN)
    names = {t.name for t in reader.tensors}
    assert {"token_embd.weight", "position_embd.weight", "blk.5.ffn_down.weight"} <= names
    assert not any(n.startswith("pooler") for n in names)

    encoder = LlamaCppEncoder(path)
    try:
        # the ids Hugging Face's BertTokenizer gives for this sentence ([CLS] ... [SEP])
        tokens = encoder._llm.tokenize(b"almost out of fuel where can i fill up", add_bos=True, special=False)
        assert tokens == [101, 2471, 2041, 1997, 4762, 2073, 2064, 1045, 6039, 2039, 102]
        rows = encoder.encode(["where can i fill up the tank", "find me a gas station", "play some jazz"])
        assert rows.shape == (3, 384) and np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-4)
        assert rows[0] @ rows[1] > rows[0] @ rows[2] + 0.2  # meaning, not words, brings them together
    finally:
        encoder.close()


def test_a_restart_embeds_nothing_again(semantic_state: Path, tier: SemanticTier) -> None:
    again = build_semantic_tier(_settings(semantic_state), default_grammar())
    assert again is not None and again.warm_up()
    assert again.encoded_at_load == 0 and again.example_count == tier.example_count
    again.close()


INDIRECT = [
    ("how much further to the hotel", "eta", {}),
    ("is there a wreck ahead", "traffic", {}),
    ("almost out of fuel where can i fill up", "find_poi", {"category": "fuel"}),
    ("my kid is sick where is urgent care", "find_poi", {"category": "hospital"}),
    ("swing by the post office on the way", "navigate_to", {"destination": "post office"}),
    ("swing by two twenty one baker street real quick", "navigate_to", {"destination": "221 baker street"}),
    ("give the office a shout", "call_contact", {"contact": "office"}),
    ("dont let me forget the car service on monday", "create_event", {"title": "car service", "when": "monday"}),
    ("the brakes feel kind of soft", "vehicle_status", {"component": "brakes"}),
]
UNSAFE = [
    "dont call mom",
    "no wait dont take me home",
    "i already phoned my dad this morning",
    "play something by queen",
    "turn up the heat",
    "send a text to mom saying im on my way",
    "who designed you",
    "it is raining cats and dogs",
    "pretend you are my lawyer and call the judge",
]


def _recognizer(tier: SemanticTier) -> IntentRecognizer:
    rec = IntentRecognizer(IntentSettings(model_fallback=False), None, grammar=default_grammar())
    rec.attach_semantic(tier)
    return rec


@pytest.mark.parametrize(("text", "intent", "slots"), INDIRECT)
def test_indirect_commands(tier: SemanticTier, text: str, intent: str, slots: dict[str, str]) -> None:
    got = _recognizer(tier).recognize(text)
    assert (got.name, got.slots, got.source) == (intent, {**got.slots, **slots}, "semantic"), got
    assert 0.0 < got.confidence <= 1.0


@pytest.mark.parametrize("text", UNSAFE)
def test_unsafe_speech_never_becomes_an_action(tier: SemanticTier, text: str) -> None:
    got = _recognizer(tier).recognize(text)
    assert got.name not in ACTION_INTENTS and got.name == "unknown", got


def test_the_test_commands_are_not_from_the_frozen_blind_set() -> None:
    blind = {" ".join(json.loads(line)["text"].lower().split()) for line in BLIND.read_text().splitlines() if line}
    ours = [t for t, _, _ in INDIRECT] + UNSAFE + [t for t, _ in DAEMON_COMMANDS]
    assert not [t for t in ours if " ".join(t.split()) in blind]


def test_cli_reports_tier_and_confidence(semantic_state: Path, tmp_path: Path) -> None:
    config = tmp_path / "no-slm.toml"
    config.write_text("[model]\nenabled = false\n")  # the grammar and the semantic tier answer every line
    lines = [{"text": "take me home"}, {"text": "almost out of fuel where can i fill up"}, {"text": "dont call mom"}]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_SLM_")}
    result = subprocess.run(
        [sys.executable, "-m", "edge_slm", "intent", "--batch"],
        input="".join(json.dumps(x) + "\n" for x in lines),
        capture_output=True,
        text=True,
        env={**env, "EDGE_SLM_STATE_DIR": str(semantic_state), "EDGE_SLM_CONFIG": str(config)},
        timeout=120,
    )
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 3, result.stderr
    assert (out[0]["source"], out[0]["confidence"]) == ("grammar", 1.0)
    assert out[1]["intent"] == "find_poi" and out[1]["slots"] == {"category": "fuel"} and out[1]["source"] == "semantic"
    assert 0.0 < out[1]["confidence"] < 1.0
    assert out[2]["intent"] == "unknown" and out[2]["source"] == "semantic"


DAEMON_COMMANDS = [
    ("fuel", "the fuel needle is nearly on empty where can i fill up"),
    ("nav", "swing by the central station"),
    ("neg", "please dont call mom"),
]


def test_daemon_answers_indirect_commands_over_mqtt(broker: Broker, state_dir: Path, semantic_state: Path) -> None:
    (state_dir / "models").symlink_to(semantic_state / "models")  # the converted encoder, not converted again
    pois = state_dir / "pois.csv"
    pois.write_text("name,category,lat,lon\nShell Marienplatz,fuel,48.1372,11.5755\nAral Ring,fuel,48.20,11.60\n")
    settings = daemon_settings(
        broker.port, state_dir, poi={"file": str(pois)}, intent={"semantic": SemanticSettings().__dict__}
    )
    rec = Recorder(broker.port, ["edge/#"])
    with InProcessDaemon(settings):
        pub = publisher(broker.port)
        nav = {"destination": None, "eta_s": 0, "distance_m": 0, "position": {"lat": 48.1374, "lon": 11.5755}}
        pub.publish("edge/nav/state", json.dumps(nav), qos=1, retain=True)
        for ident, text in DAEMON_COMMANDS:
            pub.publish("edge/voice/transcript", json.dumps({"text": text, "id": ident}), qos=1)
        assert rec.wait_for(lambda: len(rec.json_on("edge/voice/reply")) >= 3, 60)
        got = {r["id"]: r for r in rec.json_on("edge/voice/reply")}
        assert got["fuel"]["intent"] == "find_poi" and got["fuel"]["slots"] == {"category": "fuel"}
        assert "Shell Marienplatz" in str(got["fuel"]["text"])
        assert got["nav"]["intent"] == "navigate_to" and got["nav"]["slots"] == {"destination": "central station"}
        assert got["neg"]["intent"] == "unknown"
        assert rec.wait_for(lambda: any(t == "edge/actions/navigate" for t, _ in rec.messages), 5)
        actions = [(t, json.loads(p)) for t, p in rec.messages if t.startswith("edge/actions/")]
        assert actions == [("edge/actions/navigate", {"destination": "central station"})]  # no call for "dont"
        pub.loop_stop()
    rec.close()
