"""Downloading a model file: resumable (HTTP Range), retried, checksum-verified, moved into place
atomically, and never through a planted symlink (cache files are opened O_NOFOLLOW|O_EXCL).

Shared by every model source: GGUF models (`llm.models`) and speech models (`voice.vosk_models`,
`voice.whisper_models`)."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_slm.errors import ModelError

log = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024


class DownloadError(ModelError):
    """A download failed (network, HTTP status, checksum)."""


def sha256_file(path: Path, chunk: int = CHUNK_BYTES) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class _Progress:
    """tqdm on stderr when available and wanted; otherwise silent."""

    def __init__(self, enabled: bool, total: int | None, initial: int, desc: str) -> None:
        self._bar: Any = None
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            print(f"{desc}: downloading ({(total or 0) / 1e6:.1f} MB)", file=sys.stderr)
            return
        self._bar = tqdm(
            total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, file=sys.stderr
        )

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# ---------------------------------------------------------------------------------------------
# generic download


def _open(url: str, start: int, timeout_s: float) -> Any:
    req = urllib.request.Request(url, headers={"User-Agent": "edge-slm"})
    if start:
        req.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(req, timeout=timeout_s)


def _total_from(resp: Any, start: int) -> int | None:
    crange = resp.headers.get("Content-Range", "")
    if crange and "/" in crange:
        tail = crange.rsplit("/", 1)[1]
        if tail.isdigit():
            return int(tail)
    length = resp.headers.get("Content-Length")
    if length and length.isdigit():
        return int(length) + (start if resp.status == 206 else 0)
    return None


def _part_size(part: Path) -> int:
    """Size of a resumable part file; 0 when there is none. A part that is not a regular file (a
    planted symlink, a FIFO) is refused, never followed."""
    try:
        info = os.lstat(part)
    except FileNotFoundError:
        return 0
    if not stat.S_ISREG(info.st_mode):
        kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a regular file"
        raise DownloadError(f"refusing to use {part}: it is {kind} (remove it and try again)")
    return info.st_size


def open_private(path: Path, append: bool = False) -> int:
    """A cache file for writing, never through a symlink: a fresh one is created 0600 with O_EXCL
    (a stale regular file is removed first); `append` reopens an existing regular file."""
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    if append:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | nofollow)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise DownloadError(f"refusing to write {path}: not a regular file")
        return fd
    _part_size(path)  # refuses a symlink
    path.unlink(missing_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | nofollow, 0o600)


def has_magic(path: Path, magic: bytes) -> bool:
    with path.open("rb") as fh:
        return fh.read(len(magic)) == magic


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str | None = None,
    progress: bool = True,
    *,
    retries: int = 3,
    timeout_s: float = 60.0,
    on_progress: Callable[[int, int], None] | None = None,
    magic: bytes | None = None,
) -> Path:
    """Fetch `url` to `dest` atomically; `on_progress(done, total)` follows each block.

    The bytes go to `dest + ".part"`; an existing part file is resumed with an HTTP Range request
    (a server that ignores Range restarts it). A dropped connection is resumed up to `retries`
    times. When `sha256` is given the finished file must match it or it is deleted and
    `DownloadError` is raised; so it is when `magic` is given and the file does not start with it.
    Only then is it renamed onto `dest`. Returns `dest`.
    """
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    attempt = 0
    while True:
        start = _part_size(part)
        try:
            _fetch_into(url, part, start, progress, timeout_s, target.name, on_progress)
            break
        except urllib.error.HTTPError as err:
            if err.code == 416 and start:  # the part file is already complete (or bogus): verify below
                break
            raise DownloadError(f"download of {url} failed: HTTP {err.code} {err.reason}") from err
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            attempt += 1
            reason = getattr(err, "reason", None) or err
            if attempt > retries:
                raise DownloadError(f"download of {url} failed after {attempt} tries: {reason}") from err
            log.warning("download of %s interrupted (%s); resuming (try %d of %d)", url, reason, attempt, retries)
            time.sleep(min(0.2 * attempt, 2.0))

    if magic is not None and not has_magic(part, magic):
        part.unlink(missing_ok=True)
        raise DownloadError(f"{target.name} from {url} is not a {magic.decode(errors='replace')} file; deleted")
    if sha256:
        actual = sha256_file(part)
        if actual.lower() != sha256.lower():
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"checksum mismatch for {target.name} from {url}: expected sha256 {sha256}, got {actual}; "
                "the partial file was deleted"
            )
    with part.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(part, target)
    fsync_dir(target.parent)
    return target


def _fetch_into(
    url: str,
    part: Path,
    start: int,
    progress: bool,
    timeout_s: float,
    desc: str,
    on_progress: Callable[[int, int], None] | None = None,
) -> None:
    with _open(url, start, timeout_s) as resp:
        if start and resp.status != 206:
            log.info("server ignored the Range request for %s; starting again", url)
            start = 0
        total = _total_from(resp, start)
        bar = _Progress(progress, total, start, desc)
        try:
            with os.fdopen(open_private(part, append=bool(start)), "ab") as out:
                written = start
                while block := resp.read(CHUNK_BYTES):
                    out.write(block)
                    written += len(block)
                    bar.update(len(block))
                    if on_progress is not None:
                        on_progress(written, total or 0)
                out.flush()
        finally:
            bar.close()
        if total is not None and written < total:
            raise ConnectionError(f"connection closed after {written} of {total} bytes")


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
