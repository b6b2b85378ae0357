"""Tuning data, rubric, verdict and adapter lookup: pure logic, no model."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from edge_slm.config import ModelSettings, load_settings
from edge_slm.detect.rules import load_rules
from edge_slm.intent.schema import INTENT_SLOTS
from edge_slm.llm.explain import EXPLANATION_SCHEMA, gate_texts, invented_numbers, mentions_value
from edge_slm.tune import adapters, command_data, explain_data
from edge_slm.tune.evaluate import verdict
from edge_slm.tune.examples import Example, read_jsonl, write_jsonl
from edge_slm.tune.pipeline import DataMix, blind_texts, build_data, select_training
from edge_slm.tune.rubric import CommandScore, explanation_checks, names_known_cause, repeats

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Example]]:
    return build_data(tmp_path_factory.mktemp("tune"))


def test_splits_share_no_text_template_or_device(built: dict[str, list[Example]]) -> None:
    train, heldout = built["train"], built["heldout"]
    assert len(train) > 1000 and len(heldout) > 100
    assert not {e.user for e in train} & {e.user for e in heldout}
    templates = {s: {e.source for e in built[s] if e.source.startswith("grammar:")} for s in ("train", "heldout")}
    assert templates["train"] and templates["heldout"] and not templates["train"] & templates["heldout"]
    devices = {s: {e.meta["facts"]["device"] for e in built[s] if e.task == "explain"} for s in ("train", "heldout")}
    assert devices["train"] and devices["heldout"] and not devices["train"] & devices["heldout"]
    assert {e.task for e in heldout} == {"command", "explain"}


def test_frozen_blind_set_is_refused_and_absent(built: dict[str, list[Example]]) -> None:
    with pytest.raises(ValueError, match="frozen blind set"):
        list(command_data.labelled_examples("train", files=[DATA / command_data.FROZEN_BLIND_SET]))
    blind = blind_texts()
    assert len(blind) > 200
    assert not blind & {e.user for split in built.values() for e in split}
    assert all(not e.source.endswith(command_data.FROZEN_BLIND_SET) for split in built.values() for e in split)


def test_command_answers_are_the_model_tier_format(built: dict[str, list[Example]]) -> None:
    for ex in (e for split in built.values() for e in split if e.task == "command"):
        answer = json.loads(ex.answer)
        assert list(answer) == ["intent", "slots"]
        assert answer["intent"] in INTENT_SLOTS
        assert set(answer["slots"]) == set(INTENT_SLOTS[answer["intent"]])
        assert ex.user == ex.user.lower() and ex.user.strip()


def test_explanation_answers_pass_the_explainers_own_checks(built: dict[str, list[Example]]) -> None:
    limit = EXPLANATION_SCHEMA["properties"]["summary"]["maxLength"]
    rules_seen = set()
    for ex in (e for split in built.values() for e in split if e.task == "explain"):
        answer = json.loads(ex.answer)
        assert set(answer) == {"summary", "cause", "action"}
        assert all(4 <= len(v) <= limit for v in answer.values())
        assert not invented_numbers(" ".join(answer.values()), ex.user)
        assert mentions_value(answer["summary"], ex.meta["value"])
        assert names_known_cause(answer["cause"], ex.meta["causes"], ex.meta["signal"])
        gate = ex.meta["gate"]
        verdict = gate_texts(
            answer, gate["reference"], value=ex.meta["value"], device=gate["device"],
            cause_keywords=gate["cause_keywords"], foreign_keywords=gate["foreign_keywords"],
        )  # fmt: skip
        assert verdict == "", (verdict, ex.answer)  # the daemon would publish every answer it is taught
        rules_seen.add(ex.meta["rule"])
    assert rules_seen == {r.id for r in load_rules()}


def test_asr_noise() -> None:
    import random

    rng = random.Random(3)
    noisy = [command_data.asr_noise("Remind me to call the bank at 3 pm, please.", rng) for _ in range(30)]
    assert all(n == n.lower() and "," not in n for n in noisy)
    assert any("three" in n for n in noisy) and any(n.split()[0] in command_data.FILLERS for n in noisy)


def test_answers_rewrite_the_knowledge_text_and_held_out_phrasings_differ(built: dict[str, list[Example]]) -> None:
    def frames(split: str) -> set[str]:
        """The cause's sentence frame: the text before its first comma or colon, the cause's name as X."""
        out = set()
        for ex in built[split]:
            if ex.task == "explain":
                answer, reference = json.loads(ex.answer), ex.meta["gate"]["reference"]
                assert answer["summary"] != reference[0] and answer["cause"] != reference[1]  # reworded
                assert answer["action"] == reference[2]  # a technician's steps stay word for word
                assert ex.meta["causes"][0].lower() in answer["cause"].lower()  # the diagnosed cause, by name
                name = re.escape(ex.meta["causes"][0])
                out.add(re.split(r"[,:.]", re.sub(name, "X", answer["cause"], flags=re.IGNORECASE))[0])
        return out

    train, heldout = frames("train"), frames("heldout")
    assert len(train) >= 3 and heldout and train.isdisjoint(heldout)


def test_selection_balances_intents_and_keeps_labelled_first(built: dict[str, list[Example]]) -> None:
    chosen = select_training(built["train"], DataMix(commands_per_intent=20, explanations=10))
    per_intent: dict[str, int] = {}
    for e in chosen:
        if e.task == "command":
            per_intent[e.meta["intent"]] = per_intent.get(e.meta["intent"], 0) + 1
    assert set(per_intent) == set(INTENT_SLOTS) and max(per_intent.values()) <= 20
    assert sum(e.task == "explain" for e in chosen) == 10
    assert any(e.source.startswith("labelled") for e in chosen)


def test_jsonl_round_trip_and_bad_lines(tmp_path: Path) -> None:
    items = list(itertools.islice(explain_data.explanation_examples("heldout"), 3))
    path = tmp_path / "x.jsonl"
    assert write_jsonl(path, items) == 3
    assert list(read_jsonl(path)) == items
    path.write_text('{"task": "poem", "user": "x", "answer": "y"}\n')
    with pytest.raises(ValueError, match=r"x\.jsonl:1"):
        list(read_jsonl(path))


def test_rubric() -> None:
    facts = 'FACTS:\n{"device": "car-1", "value": 125.9, "recent": [120.7, 125.9]}'
    good = {"summary": "Coolant on car-1 reached 125.9 C.", "cause": "A stuck thermostat is likely.",
            "action": "Stop and check the coolant level."}  # fmt: skip
    kwargs = {"cut_off": False, "facts_text": facts, "value": 125.9, "causes": ["stuck thermostat"], "label": ""}
    assert all(explanation_checks(good, **kwargs).values())
    looping = dict(good, action="Check the fan. Check the fan. Check the fan.")
    assert not explanation_checks(looping, **kwargs)["no_repetition"]
    invented = dict(good, summary="Coolant on car-1 reached 131 C.")
    checks = explanation_checks(invented, **kwargs)
    assert not checks["no_invented_numbers"] and not checks["states_value"]
    assert not explanation_checks(dict(good, cause="Something is wrong."), **kwargs)["names_cause"]
    assert not any(explanation_checks(None, **{**kwargs, "cut_off": True}).values())
    assert repeats("a b c d a b c d") and not repeats("a b c d e f")
    # a word of the signal's own label is no cause ("battery" for a battery alert)
    assert not names_known_cause("The battery is bad.", ["worn battery"], label="12 V battery voltage")


def test_command_score_counts_wrong_and_unsafe_actions_like_score_intents() -> None:
    score = CommandScore()
    # spoken numbers equal digits: the same action
    score.add("navigate to pier thirty nine", "navigate_to", {"destination": "pier 39"},
              "navigate_to", {"destination": "pier thirty nine"}, "navigate_to")  # fmt: skip
    # right intent, other slot: a wrong action, not an unsafe one
    score.add("take me to the main gate of the plant", "navigate_to", {"destination": "main gate of the plant"},
              "navigate_to", {"destination": "plant"}, "navigate_to")  # fmt: skip
    # an action nobody asked for: wrong and unsafe
    score.add("how long until we get there", "eta", {}, "call_contact", {"contact": "there"}, "call_contact")
    # no action taken: neither
    score.add("call my sister", "call_contact", {"contact": "my sister"}, "unknown", {}, "call_contact")
    summary = score.summary()
    assert summary["intent_accuracy"] == 0.5 and summary["raw_intent_accuracy"] == 0.75
    assert summary["wrong_actions"] == 2 and summary["unsafe_actions"] == 1
    assert summary["slot_accuracy"] == round(1 / 3, 4)


def _scores(cmd: float, unsafe: int, exp: float) -> dict[str, dict[str, float | int]]:
    return {"commands_heldout": {"intent_accuracy": cmd, "unsafe_actions": unsafe},
            "explanations_heldout": {"rubric_pass_rate": exp}}  # fmt: skip


def test_verdict_installs_only_a_safe_win() -> None:
    assert verdict(_scores(0.3, 1, 0.1), _scores(0.6, 1, 0.5))[0]
    assert not verdict(_scores(0.3, 1, 0.1), _scores(0.9, 2, 0.9))[0]  # less safe
    assert not verdict(_scores(0.3, 0, 0.5), _scores(0.9, 0, 0.4))[0]  # worse explanations
    assert not verdict(_scores(0.3, 0, 0.5), _scores(0.3, 0, 0.5))[0]  # no better


def test_lora_path_auto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert adapters.resolve_lora_path(ModelSettings(lora_path="/x/a.gguf"), tmp_path) == "/x/a.gguf"
    assert adapters.resolve_lora_path(ModelSettings(lora_path=""), tmp_path) == ""
    for profile in ("generic", "raspberry-pi-4", "head-unit"):  # boards load the tuned adapter where one fits
        assert load_settings(profile=profile, environ={}).model.lora_path == "auto"
    monkeypatch.setattr(adapters, "SHIPPED_DIR", tmp_path / "shipped")
    auto = ModelSettings(name="smollm2-135m", lora_path="auto")
    assert adapters.resolve_lora_path(auto, tmp_path) == ""
    shipped = tmp_path / "shipped" / "smollm2-135m.lora.gguf"
    shipped.parent.mkdir()
    shipped.write_bytes(b"x")
    assert adapters.resolve_lora_path(auto, tmp_path) == str(shipped)
    site = adapters.installed_adapter("smollm2-135m", tmp_path)
    site.parent.mkdir()
    site.write_bytes(b"x")
    assert adapters.resolve_lora_path(auto, tmp_path) == str(site)  # the site's own adapter wins
    custom = ModelSettings(name="smollm2-135m", path="/m/other.gguf", lora_path="auto")
    assert adapters.resolve_lora_path(custom, tmp_path) == ""  # an adapter only fits its base model


def test_every_builtin_source_is_used_whatever_was_imported_first() -> None:
    import subprocess
    import sys

    code = (
        "from edge_slm.tune import command_data\n"  # registers only the command source on import
        "from edge_slm.tune import examples\n"
        "print(sorted(examples.sources()))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "['commands', 'explanations']"
