"""A private state directory and an MQTT client id that another client cannot guess.

The client id names the persistent session: a client that knows it can connect with it, take the
session over (the broker disconnects us) and read what was queued for us. Unless `mqtt.client_id`
is configured, it is `edge-slm-{node}-{random}`, the random part made once and kept in the state
directory (mode 0600) so the session survives restarts.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger(__name__)

CLIENT_ID_FILE = "mqtt_client_suffix"
SUFFIX_HEX_CHARS = 16


def secure_state_dir(path: Path) -> Path:
    """Create the state directory 0700 (or tighten an existing one we own): the outbox holds
    contacts and places. (`edge-slm run` also sets umask 077, so every file it creates is 0600.)"""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
        mode = stat.S_IMODE(info.st_mode)
        if mode & (stat.S_ISVTX | stat.S_IWOTH):  # a shared directory such as /tmp: never chmod it
            log.warning("state dir %s is shared (mode %o); use a private directory for state_dir", path, mode)
        elif info.st_uid == os.getuid() and mode & 0o077:
            os.chmod(path, mode & 0o700)
            log.info("state dir %s was readable by others; now 0700", path)
    except OSError as err:
        log.warning("cannot secure state dir %s: %s", path, err)
    os.umask(0o077)
    return path


def client_suffix(state_dir: Path) -> str:
    """The persisted random suffix; made on first use. A broken file is replaced."""
    path = state_dir / CLIENT_ID_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "r") as fh:
            suffix = fh.read(64).strip()
        if len(suffix) == SUFFIX_HEX_CHARS and all(c in "0123456789abcdef" for c in suffix):
            return suffix
    except OSError:
        pass
    suffix = secrets.token_hex(SUFFIX_HEX_CHARS // 2)
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f"{CLIENT_ID_FILE}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(suffix + "\n")
        os.replace(tmp, path)
    except OSError as err:  # read-only state: still unguessable, but a new session each start
        log.warning("cannot keep the MQTT client id in %s (%s); the session will not survive a restart", path, err)
    return suffix


def default_client_id(configured: str, node_id: str, state_dir: Path) -> str:
    if configured:
        return configured
    return f"edge-slm-{node_id}-{client_suffix(state_dir)}"


__all__ = ["client_suffix", "default_client_id", "secure_state_dir"]
