"""LlamaCppEngine against real llama.cpp with the tiny random-weight model (fast plumbing)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import llm_fixtures

pytestmark = pytest.mark.skipif(not llm_fixtures.have_llama_cpp(), reason="llama-cpp-python not installed")

from edge_slm.config import ModelSettings, Settings  # noqa: E402
from edge_slm.errors import DependencyMissing, ModelError, ModelTimeout, ModelUnavailable  # noqa: E402
from edge_slm.llm.api import GenerationRequest, Priority  # noqa: E402

SETTINGS = ModelSettings(n_ctx=4096, n_batch=256, n_threads=1)
HANG_USER = "go"  # with this prompt the tiny model does not emit EOS for thousands of tokens


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return llm_fixtures.make_tiny(tmp_path_factory.mktemp("tiny") / "tiny.gguf")


@pytest.fixture(scope="module")
def engine(tiny: Path) -> Iterator[object]:
    from edge_slm.llm.engine import LlamaCppEngine

    eng = LlamaCppEngine(tiny, SETTINGS, name="tiny")
    yield eng
    eng.close()


def _gate(engine: object) -> tuple[threading.Event, threading.Event]:
    """Occupy the worker until the returned `release` event is set."""
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(10)

    engine.run_on_worker(hold, Priority.VOICE)  # type: ignore[attr-defined]
    assert started.wait(5)
    return started, release


def test_generates_and_reports_usage(engine: object) -> None:
    r = engine.generate(GenerationRequest(system="sys", user="hello", max_tokens=8))  # type: ignore[attr-defined]
    assert r.completion_tokens <= 8 and r.prompt_tokens > 5
    assert r.elapsed_s > 0 and r.data is None


def test_voice_is_served_before_queued_explanations(engine: object) -> None:
    order: list[str] = []
    lock = threading.Lock()
    _, release = _gate(engine)

    def track(label: str):  # type: ignore[no-untyped-def]
        def cb(_f: object) -> None:
            with lock:
                order.append(label)

        return cb

    futures = []
    for label, prio in [
        ("e1", Priority.EXPLANATION),
        ("e2", Priority.EXPLANATION),
        ("bg", Priority.BACKGROUND),
        ("v1", Priority.VOICE),
        ("e3", Priority.EXPLANATION),
        ("v2", Priority.VOICE),
    ]:
        f = engine.submit(GenerationRequest(system="sys", user=label, max_tokens=4, priority=prio))  # type: ignore[attr-defined]
        f.add_done_callback(track(label))
        futures.append(f)
    assert engine.queue_depth() == 6  # type: ignore[attr-defined]
    release.set()
    for f in futures:
        f.result(timeout=30)
    assert order == ["v1", "v2", "e1", "e2", "e3", "bg"]


def test_request_expired_in_queue_fails_fast(engine: object) -> None:
    _, release = _gate(engine)
    f = engine.submit(GenerationRequest(system="sys", user="late", max_tokens=4, deadline_s=0.05))  # type: ignore[attr-defined]
    time.sleep(0.2)
    t0 = time.monotonic()
    release.set()
    with pytest.raises(ModelTimeout, match="waiting"):
        f.result(timeout=10)
    assert time.monotonic() - t0 < 1.0


def test_hanging_generation_is_cancelled_at_deadline(engine: object) -> None:
    t0 = time.monotonic()
    f = engine.submit(GenerationRequest(system="sys", user=HANG_USER, max_tokens=3500, deadline_s=0.4))  # type: ignore[attr-defined]
    with pytest.raises(ModelTimeout, match="deadline"):
        f.result(timeout=30)
    assert time.monotonic() - t0 < 2.0
    # The worker is free again.
    r = engine.generate(GenerationRequest(system="sys", user="after", max_tokens=4, priority=Priority.VOICE))  # type: ignore[attr-defined]
    assert r.completion_tokens >= 1


def test_fixed_prefix_is_reused(engine: object) -> None:
    system = "You are a test. " * 40
    few = (("q1", "a1"), ("q2", "a2"))
    prefix = engine.prefix_tokens(system, few)  # type: ignore[attr-defined]
    assert len(prefix) > 200
    engine.generate(GenerationRequest(system=system, few_shot=few, user="first", max_tokens=2))  # type: ignore[attr-defined]
    r = engine.generate(GenerationRequest(system=system, few_shot=few, user="second one", max_tokens=2))  # type: ignore[attr-defined]
    assert r.cached_tokens >= len(prefix)
    assert r.prompt_tokens - r.cached_tokens < 30  # only the user turn (one token per character here)


def test_json_schema_output_parses_or_is_reported(engine: object) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    r = engine.generate(GenerationRequest(system="s", user="json", json_schema=schema, max_tokens=30))  # type: ignore[attr-defined]
    assert isinstance(r.data, dict) and isinstance(r.data["ok"], bool)


def test_prefix_state_survives_restart(tiny: Path, tmp_path: Path) -> None:
    from edge_slm.llm.engine import LlamaCppEngine

    system = "Fixed prefix for the state test. " * 30
    with LlamaCppEngine(tiny, SETTINGS, state_dir=tmp_path) as first:
        st = first.prepare_prefix(system)
        assert st.saved and not st.loaded and st.path is not None and st.path.is_file()
        expected = first.generate(GenerationRequest(system=system, user="hi", max_tokens=6)).text
    with LlamaCppEngine(tiny, SETTINGS, state_dir=tmp_path) as second:
        st2 = second.prepare_prefix(system)
        assert st2.loaded and st2.n_tokens == st.n_tokens
        r = second.generate(GenerationRequest(system=system, user="hi", max_tokens=6))
        assert r.cached_tokens >= st.n_tokens
        assert r.text == expected  # same output as with a freshly evaluated prefix
    # Another n_ctx is another key: nothing is loaded.
    other = ModelSettings(n_ctx=2048, n_batch=256, n_threads=1)
    with LlamaCppEngine(tiny, other, state_dir=tmp_path) as third:
        assert not third.prepare_prefix(system, save=False).loaded


def test_alternating_prefixes_swap_in_their_saved_state(tiny: Path, tmp_path: Path) -> None:
    from edge_slm.llm.engine import LlamaCppEngine

    explain, voice = "Explain alerts. " * 30, "Classify commands. " * 30
    with LlamaCppEngine(tiny, SETTINGS, state_dir=tmp_path) as eng:
        n_explain = eng.prepare_prefix(explain).n_tokens
        n_voice = eng.prepare_prefix(voice).n_tokens
        first = eng.generate(GenerationRequest(system=explain, user="a", max_tokens=4))
        second = eng.generate(GenerationRequest(system=voice, user="b", max_tokens=4))
        third = eng.generate(GenerationRequest(system=explain, user="a", max_tokens=4))
        assert eng.prefix_swaps >= 2
        assert first.cached_tokens >= n_explain and second.cached_tokens >= n_voice and third.cached_tokens >= n_explain
        assert third.text == first.text  # a swapped-in prefix answers as the evaluated one did


def test_close_fails_pending_and_later_requests(tiny: Path) -> None:
    from edge_slm.llm.engine import LlamaCppEngine

    eng = LlamaCppEngine(tiny, SETTINGS)
    _, release = _gate(eng)
    pending = eng.submit(GenerationRequest(system="s", user="x", max_tokens=2))
    threading.Timer(0.2, release.set).start()
    eng.close()
    with pytest.raises(ModelUnavailable):
        pending.result(timeout=5)
    with pytest.raises(ModelUnavailable):
        eng.submit(GenerationRequest(system="s", user="x")).result(timeout=5)


def test_load_engine_admission_and_errors(tiny: Path, tmp_path: Path) -> None:
    from edge_slm.llm.loader import load_engine

    ok = Settings(state_dir=str(tmp_path), model=ModelSettings(path=str(tiny), n_ctx=1024, n_threads=1))
    eng = load_engine(ok)
    try:
        assert eng.model_name == "tiny"
    finally:
        eng.close()
    with pytest.raises(ModelError, match="memory_budget_mb is 10"):
        load_engine(Settings(model=ModelSettings(path=str(tiny), memory_budget_mb=10)))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(tiny.read_bytes()[:5000])
    with pytest.raises(ModelError, match="truncated"):
        load_engine(Settings(model=ModelSettings(path=str(bad))))


def test_missing_llama_cpp_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_slm.llm.engine import import_llama_cpp

    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(DependencyMissing, match=r"pip install 'edge-slm\[llm\]'"):
        import_llama_cpp()


@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_K_M"])
def test_quantize_then_load_and_generate(tmp_path_factory: pytest.TempPathFactory, qtype: str) -> None:
    from edge_slm.llm.engine import LlamaCppEngine
    from edge_slm.llm.gguf_info import inspect_gguf
    from edge_slm.llm.quantize import quantize

    d = tmp_path_factory.mktemp("q")
    src = llm_fixtures.make_tiny(d / "tiny-f32.gguf", dtype="f32")
    res = quantize(src, d / f"tiny-{qtype}.gguf", qtype, progress=False)
    assert res.dst_bytes < res.src_bytes / 3
    info = inspect_gguf(res.dst)
    assert info.file_type == qtype
    with LlamaCppEngine(res.dst, SETTINGS) as eng:
        r = eng.generate(GenerationRequest(system="s", user="hello", max_tokens=5))
        assert r.completion_tokens >= 1
    with pytest.raises(ModelError, match="unknown quantisation"):
        quantize(src, d / "x.gguf", "Q9_9")


def test_voice_preempts_a_running_explanation(engine: object) -> None:
    done: list[str] = []
    before = engine.preemptions  # type: ignore[attr-defined]
    expl = engine.submit(  # type: ignore[attr-defined]
        GenerationRequest(system="sys", user=HANG_USER, max_tokens=1500, deadline_s=30, priority=Priority.EXPLANATION)
    )
    expl.add_done_callback(lambda _f: done.append("explanation"))
    # the explanation is generating now: 1,500 tokens take half a second even on a quiet machine (600 took
    # 0.22 s on one, and the explanation was over before the voice request came)
    time.sleep(0.1)
    assert not expl.done(), expl.exception() or expl.result()
    t0 = time.monotonic()
    voice = engine.submit(  # type: ignore[attr-defined]
        GenerationRequest(system="sys", user="voice", max_tokens=4, priority=Priority.VOICE)
    )
    voice.add_done_callback(lambda _f: done.append("voice"))
    voice.result(timeout=10)
    assert time.monotonic() - t0 < 1.0  # did not wait for the 1,500-token explanation
    r = expl.result(timeout=30)  # restarted after the voice request, and completed
    assert r.completion_tokens == 1500
    assert done == ["voice", "explanation"]
    assert engine.preemptions == before + 1  # type: ignore[attr-defined]
