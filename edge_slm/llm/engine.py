"""`LlamaCppEngine`: one llama.cpp model behind one worker thread (the only module importing llama_cpp).

- One worker owns the model; requests wait in a priority queue (api.Priority, ties first-come).
- A request whose deadline passed while it waited fails at once with ModelTimeout; a running one is
  cancelled cooperatively by a stopping criterion that checks the clock and a cancel flag after every
  token (prompt prefill itself is one native call and is not interrupted).
- The prompt is the model's own chat template (from the GGUF, via llama-cpp-python's Jinja2 chat
  formatter; ChatML or Gemma turns when the file has none). The fixed prefix (system + few-shot)
  renders to identical tokens every time, so llama.cpp's prefix match reuses its KV cache;
  `GenerationResult.cached_tokens` reports how many prompt tokens were reused.
- JSON-schema requests are constrained by a grammar (LlamaGrammar.from_json_schema) and parsed.
- `prepare_prefix` evaluates a fixed prefix once and saves its KV state under `state_dir`, keyed by
  the model file, context settings and prefix hash, so a restart loads it instead of re-evaluating.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_slm.errors import DependencyMissing, EdgeSlmError, ModelError, ModelTimeout, ModelUnavailable
from edge_slm.llm import chat, llama_state
from edge_slm.llm.api import GenerationRequest, GenerationResult, ModelOutputError, Priority
from edge_slm.llm.native_logs import NATIVE_LOGS
from edge_slm.llm.scheduler import Job, JobScheduler, Preempted

if TYPE_CHECKING:
    from edge_slm.config import ModelSettings

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'edge-slm[llm]'"
GGML_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8, "bf16": 30}


def import_llama_cpp() -> Any:
    """Import llama_cpp lazily; a missing package is a DependencyMissing naming the extra."""
    try:
        import llama_cpp
    except ImportError as err:
        raise DependencyMissing(f"llama-cpp-python is not installed: {INSTALL_HINT}") from err
    return llama_cpp


@dataclass(frozen=True)
class PrefixState:
    """What `prepare_prefix` did: tokens in the prefix, whether it came from disk, and where it is."""

    n_tokens: int
    loaded: bool
    saved: bool
    path: Path | None
    elapsed_s: float


def effective_threads(n_threads: int) -> int:
    if n_threads > 0:
        return n_threads
    return max(1, (os.cpu_count() or 2) - 1)


class LlamaCppEngine:
    """A loaded GGUF model served by one worker thread. Thread-safe to call."""

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        settings: ModelSettings,
        *,
        name: str = "",
        state_dir: str | os.PathLike[str] | None = None,
        model_key: str | None = None,
        seed: int = 1234,
    ) -> None:
        llama_cpp = import_llama_cpp()
        from llama_cpp import llama_chat_format

        self._lc = llama_cpp
        self.settings = settings
        self.model_path = Path(model_path)
        self._name = name or self.model_path.stem
        self.state_dir = Path(state_dir) if state_dir else None
        self.n_threads = effective_threads(settings.n_threads)
        self._seed = seed
        NATIVE_LOGS.install(llama_cpp, settings.debug_native_logs)
        verbose = settings.debug_native_logs
        for kv in (settings.type_k, settings.type_v):
            if kv not in GGML_TYPES:
                raise ModelError(f"unsupported KV cache type {kv!r}; choose from {', '.join(GGML_TYPES)}")
        kwargs: dict[str, Any] = dict(
            n_ctx=settings.n_ctx,
            n_batch=settings.n_batch,
            n_ubatch=min(settings.n_batch, 512),
            n_threads=self.n_threads,
            n_threads_batch=self.n_threads,
            n_gpu_layers=settings.n_gpu_layers,
            use_mmap=settings.use_mmap,
            use_mlock=settings.use_mlock,
            flash_attn=settings.flash_attn,
            type_k=GGML_TYPES[settings.type_k],
            type_v=GGML_TYPES[settings.type_v],
            seed=seed,
            verbose=verbose,
        )
        if settings.lora_path:
            if not Path(settings.lora_path).is_file():
                raise ModelError(f"model.lora_path {settings.lora_path} does not exist")
            kwargs["lora_path"] = settings.lora_path
        started = time.monotonic()
        try:
            self._llm = llama_cpp.Llama(model_path=str(self.model_path), **kwargs)
        except (ValueError, RuntimeError, OSError) as err:
            detail = NATIVE_LOGS.last_error() or str(err).splitlines()[0]
            raise ModelError(f"cannot load model {self.model_path}: {detail}") from err
        self.load_s = time.monotonic() - started
        meta = dict(self._llm.metadata or {})
        self.architecture = str(meta.get("general.architecture", ""))
        template = meta.get("tokenizer.chat_template", "")
        self._formatter: Any = None
        if template:
            eos_id = self._llm.token_eos()
            bos_id = self._llm.token_bos()
            eos = llama_state.token_text(self._llm, eos_id)
            bos = llama_state.token_text(self._llm, bos_id)
            try:
                self._formatter = llama_chat_format.Jinja2ChatFormatter(
                    template=template, eos_token=eos, bos_token=bos, stop_token_ids=[eos_id]
                )
                self.chat_format = "gguf-template"
            except Exception as err:  # a template jinja cannot parse: fall back
                log.warning("chat template of %s unusable (%s); using a built-in format", self._name, err)
        if self._formatter is None:
            self.chat_format = chat.fallback_format_for(self.architecture)
        self._model_key = model_key or llama_state.file_fingerprint(self.model_path)
        self._grammars: dict[str, Any] = {}
        self._jobs = JobScheduler()
        self.prefix_swaps = 0
        self._prefix_cache: dict[Path, list[int]] = {}
        self._thread = threading.Thread(target=self._worker, name=f"llm-{self._name}", daemon=True)
        self._thread.start()
        log.info(
            "model %s loaded in %.2f s (%s, n_ctx=%d, n_batch=%d, threads=%d, chat format %s)",
            self._name,
            self.load_s,
            self.architecture,
            settings.n_ctx,
            settings.n_batch,
            self.n_threads,
            self.chat_format,
        )

    # -- LlmEngine ------------------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        return self._name

    @property
    def llama(self) -> Any:
        """The underlying llama_cpp.Llama (for benchmarks; do not use it while requests run)."""
        return self._llm

    @property
    def uses_few_shot(self) -> bool:
        """Whether prompts keep the requests' few-shot examples (model.few_shot; "auto": not with an adapter)."""
        mode = self.settings.few_shot
        return mode == "always" or (mode == "auto" and not self.settings.lora_path)

    def _shots(self, few_shot: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        return tuple(few_shot) if self.uses_few_shot else ()

    def submit(self, request: GenerationRequest) -> Future[GenerationResult]:
        if request.few_shot and not self.uses_few_shot:
            request = replace(request, few_shot=())
        return self._jobs.submit(int(request.priority), request.deadline_s, request=request)

    def generate(self, request: GenerationRequest) -> GenerationResult:
        return self.submit(request).result()

    def close(self, timeout_s: float = 10.0) -> None:
        if self._jobs.closed:
            return
        self._jobs.close()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                # Still inside one native call: freeing the model under it would crash the process.
                # Leave it to the process exit.
                log.warning("model worker still busy after %.0f s; not freeing the model under it", timeout_s)
                return
        try:
            self._llm.close()
        except Exception as err:  # pragma: no cover - best effort
            log.debug("closing llama failed: %s", err)

    def __enter__(self) -> LlamaCppEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_on_worker(
        self, fn: Callable[[], Any], priority: Priority = Priority.BACKGROUND, deadline_s: float = 60.0
    ) -> Future[Any]:
        """Run `fn` on the model's worker thread, queued like a request (maintenance, tests, benchmarks)."""
        return self._jobs.submit(int(priority), deadline_s, call=fn)

    @property
    def preemptions(self) -> int:
        return self._jobs.preemptions

    def queue_depth(self) -> int:
        return self._jobs.depth()

    def counters(self) -> dict[str, int]:
        return {
            "queue_depth": self._jobs.depth(),
            "preemptions": self._jobs.preemptions,
            "expired_in_queue": self._jobs.expired,
            "prefix_swaps": self.prefix_swaps,
        }

    # -- worker ---------------------------------------------------------------------------------

    def _worker(self) -> None:
        while (job := self._jobs.next_job()) is not None:
            try:
                self._serve(job)
            finally:
                self._jobs.finished(job)

    def _serve(self, job: Job) -> None:
        try:
            if job.call is not None:
                result: Any = job.call()
            else:
                assert job.request is not None
                result = self._run(job, job.request)
        except Preempted:
            self._jobs.requeue(job)  # served again from the start after the more urgent work
        except EdgeSlmError as err:
            job.future.set_exception(err)
        except Exception as err:
            log.exception("generation failed")
            job.future.set_exception(ModelUnavailable(f"generation failed: {type(err).__name__}: {err}"))
        else:
            job.future.set_result(result)

    # -- prompts --------------------------------------------------------------------------------

    def render(self, messages: Sequence[chat.Message]) -> tuple[str, bool]:
        """The prompt text (ending with the assistant turn opener) and whether it already contains
        the BOS/special prefix tokens."""
        if self._formatter is not None:
            response = self._formatter(messages=list(messages))
            return str(response.prompt), bool(response.added_special)
        renderer = chat.FALLBACK_RENDERERS[self.chat_format]
        return renderer(messages, True), False

    def tokenize_prompt(self, request_or_messages: GenerationRequest | Sequence[chat.Message]) -> list[int]:
        if isinstance(request_or_messages, GenerationRequest):
            r = request_or_messages
            messages = chat.build_messages(r.system, r.few_shot, r.user)
        else:
            messages = list(request_or_messages)
        text, added_special = self.render(messages)
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=not added_special, special=True))

    def prefix_tokens(self, system: str, few_shot: Sequence[tuple[str, str]] = ()) -> list[int]:
        """The tokens every prompt with this fixed prefix starts with (found by rendering two
        different user turns and keeping their common start)."""
        a = self.tokenize_prompt(chat.build_messages(system, few_shot, "\x01a"))
        b = self.tokenize_prompt(chat.build_messages(system, few_shot, "\x02b"))
        return a[: chat.common_prefix_len(a, b)]

    def _grammar(self, schema: dict[str, Any]) -> Any:
        key = chat.schema_key(schema)
        grammar = self._grammars.get(key)
        if grammar is None:
            from llama_cpp import LlamaGrammar

            try:
                grammar = LlamaGrammar.from_json_schema(key, verbose=False)
            except Exception as err:
                raise ModelError(f"JSON schema cannot be turned into a grammar: {err}") from err
            self._grammars[key] = grammar
        return grammar

    # -- generation -----------------------------------------------------------------------------

    def _run(self, job: Job, request: GenerationRequest) -> GenerationResult:
        llm = self._llm
        started = time.monotonic()
        tokens = self.tokenize_prompt(request)
        n_ctx = llm.n_ctx()
        if len(tokens) >= n_ctx:
            raise ModelError(f"prompt of {len(tokens)} tokens does not fit n_ctx={n_ctx}")
        cached = chat.common_prefix_len(llm.input_ids[: llm.n_tokens].tolist(), tokens)
        cached = self._swap_in_saved_prefix(request, tokens, cached)
        grammar = self._grammar(request.json_schema) if request.json_schema else None
        reason: list[str] = []
        first_token_at: list[float] = []

        def stop(_ids: Any, _logits: Any) -> bool:
            if not first_token_at:
                first_token_at.append(time.monotonic())
            if job.cancel.is_set():
                reason.append("cancelled")
                return True
            if job.preempt.is_set():
                reason.append("preempted")
                return True
            if time.monotonic() >= job.deadline:
                reason.append("deadline")
                return True
            return False

        self._prefill(job, request, tokens, cached)

        max_tokens = max(1, min(request.max_tokens, n_ctx - len(tokens)))
        out = llm.create_completion(
            prompt=tokens,
            max_tokens=max_tokens,
            temperature=request.temperature,
            top_k=40,
            top_p=0.95,
            min_p=0.05,
            repeat_penalty=1.0,
            seed=self._seed,
            grammar=grammar,
            stop=chat.FALLBACK_STOPS.get(self.chat_format) or None,
            stopping_criteria=self._lc.StoppingCriteriaList([stop]),
        )
        elapsed = time.monotonic() - started
        if reason:
            if reason[0] == "preempted":
                raise Preempted()
            if reason[0] == "deadline":
                raise ModelTimeout(
                    f"generation cancelled after {elapsed:.2f} s: the {request.deadline_s:g} s deadline passed"
                )
            raise ModelUnavailable("generation cancelled: the model engine is shutting down")
        choice = out["choices"][0]
        text = str(choice["text"])
        usage = out.get("usage", {})
        data: dict[str, Any] | None = None
        if request.json_schema is not None:
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as err:
                raise ModelOutputError(
                    f"model output is not complete JSON (finish reason {choice.get('finish_reason')}, "
                    f"{usage.get('completion_tokens', '?')} tokens): raise max_tokens or shorten the schema"
                ) from err
            if not isinstance(parsed, dict):
                raise ModelOutputError("model output is JSON but not an object")
            data = parsed
        return GenerationResult(
            text=text,
            data=data,
            prompt_tokens=int(usage.get("prompt_tokens", len(tokens))),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            elapsed_s=elapsed,
            queued_s=started - job.submitted,
            cached_tokens=cached,
            prefill_s=(first_token_at[0] - started) if first_token_at else elapsed,
        )

    def _swap_in_saved_prefix(self, request: GenerationRequest, tokens: list[int], cached: int) -> int:
        """The KV cache holds another prompt's prefix (explanations and voice commands take
        turns): loading this request's saved prefix state takes milliseconds where evaluating
        it again takes seconds on a small board."""
        path = self.state_path(request.system, request.few_shot)
        if path is None or not path.is_file():
            return cached
        prefix = self._prefix_cache.get(path)
        if prefix is None:
            prefix = self.prefix_tokens(request.system, request.few_shot)
            self._prefix_cache[path] = prefix
        if cached >= len(prefix) or tokens[: len(prefix)] != prefix:
            return cached
        try:
            llama_state.load_prefix_state(self._lc, self._llm, path, prefix, self._model_key)
        except (ValueError, OSError, RuntimeError) as err:
            log.debug("saved prefix %s not used: %s", path.name, err)
            return chat.common_prefix_len(self._llm.input_ids[: self._llm.n_tokens].tolist(), tokens)
        self.prefix_swaps += 1
        return len(prefix)

    def _prefill(self, job: Job, request: GenerationRequest, tokens: list[int], cached: int) -> None:
        """Evaluate a long uncached prompt part in n_batch chunks, checking deadline, cancel and
        preemption between chunks (one native decode call cannot be interrupted). The last token is
        left for create_completion, whose prefix match then finds everything else cached."""
        llm = self._llm
        chunk = max(32, self.settings.n_batch)
        end = len(tokens) - 1
        if end - cached <= chunk:
            return  # short: create_completion does it in one go
        llm.n_tokens = min(llm.n_tokens, cached)  # eval() drops the KV cells past n_tokens
        for start in range(cached, end, chunk):
            if job.cancel.is_set():
                raise ModelUnavailable("generation cancelled: the model engine is shutting down")
            if job.preempt.is_set():
                raise Preempted()
            if time.monotonic() >= job.deadline:
                raise ModelTimeout(f"prompt evaluation cancelled: the {request.deadline_s:g} s deadline passed")
            llm.eval(tokens[start : min(start + chunk, end)])

    # -- prefix state ---------------------------------------------------------------------------

    def state_path(self, system: str, few_shot: Sequence[tuple[str, str]] = ()) -> Path | None:
        if self.state_dir is None:
            return None
        s = self.settings
        key = f"{self._model_key}-ctx{s.n_ctx}-{s.type_k}{s.type_v}-{chat.prefix_hash(system, few_shot)}"
        if s.lora_path:
            key += "-lora" + llama_state.file_fingerprint(Path(s.lora_path))[:8]
        return self.state_dir / "llm-prefix" / f"{key}.kv"

    def prepare_prefix(
        self, system: str, few_shot: Sequence[tuple[str, str]] = (), *, save: bool = True, timeout_s: float = 300.0
    ) -> PrefixState:
        """Put a fixed prefix into the KV cache (from disk when saved before, else by evaluating it
        and saving it). Runs on the worker at background priority; blocks until done."""
        shots = self._shots(few_shot)
        fut = self._jobs.submit(
            int(Priority.BACKGROUND), timeout_s, call=lambda: self._prepare_prefix(system, shots, save)
        )
        result: PrefixState = fut.result()
        return result

    def _prepare_prefix(self, system: str, few_shot: Sequence[tuple[str, str]], save: bool) -> PrefixState:
        started = time.monotonic()
        tokens = self.prefix_tokens(system, few_shot)
        path = self.state_path(system, few_shot)
        if path is not None and path.is_file():
            try:
                llama_state.load_prefix_state(self._lc, self._llm, path, tokens, self._model_key)
                return PrefixState(len(tokens), True, False, path, time.monotonic() - started)
            except (ValueError, OSError, RuntimeError) as err:
                log.warning("saved prefix state %s unusable (%s); evaluating the prefix again", path.name, err)
        llm = self._llm
        if chat.common_prefix_len(llm.input_ids[: llm.n_tokens].tolist(), tokens) < len(tokens):
            llm.reset()
            chunk = max(32, self.settings.n_batch)
            for start in range(0, len(tokens), chunk):  # a closing engine stops between chunks
                if self._jobs.closed:
                    raise ModelUnavailable("prefix preparation cancelled: the model engine is shutting down")
                llm.eval(tokens[start : start + chunk])
        saved = False
        if save and path is not None:
            try:
                llama_state.save_prefix_state(self._lc, self._llm, path, tokens, self._model_key, self.settings.n_ctx)
                saved = True
            except (OSError, RuntimeError) as err:
                log.warning("cannot save prefix state to %s: %s", path, err)
        return PrefixState(len(tokens), False, saved, path, time.monotonic() - started)


__all__ = ["GGML_TYPES", "LlamaCppEngine", "PrefixState", "effective_threads", "import_llama_cpp"]
