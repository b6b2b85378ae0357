"""Durable store-and-forward for what the daemon must not lose (alerts, explanations,
replies, actions): SQLite in WAL mode. A message is written before it is published. When
the broker acknowledges it, replies and actions are deleted, while alerts and explanations
are only marked acknowledged and kept for a redelivery window (see `acknowledge`).
Whatever is unacknowledged is replayed after a reconnect or a restart, alerts first.
Bounded by rows, bytes and age; a kind may have a shorter age limit (`kind_ttl_s`: an action
not delivered within minutes must not be replayed days later). The file is created 0600."""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class OutboxError(Exception):
    """The outbox cannot store (disk full, read-only, corrupt); the caller publishes directly."""


class Kind(enum.IntEnum):
    """Replay order and overflow order: lower replays first and is evicted last."""

    ALERT = 0
    ACTION = 1
    REPLY = 2
    EXPLANATION = 3


@dataclass(frozen=True, slots=True)
class OutboxRow:
    row_id: int
    kind: Kind
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created_ts: float


_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created_ts REAL NOT NULL,
    acked_ts REAL
);
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (kind, id);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Outbox:
    def __init__(
        self, path: Path, max_rows: int, max_bytes: int, ttl_s: float, kind_ttl_s: Mapping[Kind, float] | None = None
    ) -> None:
        self._path = path
        self._max_rows = max_rows
        self._max_bytes = max_bytes
        self._ttl_s = ttl_s
        self._kind_ttl_s = {kind: min(ttl, ttl_s) for kind, ttl in (kind_ttl_s or {}).items()}
        self.evicted = 0
        self.expired = 0
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _create_private(path)
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a process crash
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
            if "acked_ts" not in columns:  # an outbox written by an earlier version
                self._db.execute("ALTER TABLE outbox ADD COLUMN acked_ts REAL")
            self._recount()
        except (sqlite3.Error, OSError) as err:
            raise OutboxError(f"cannot open outbox {path}: {err}") from err

    @property
    def depth(self) -> int:
        """Rows stored, including acknowledged ones kept for redelivery."""
        return int(self._rows)

    def unacknowledged(self) -> int:
        """Messages the broker has not acknowledged yet (the real backlog)."""
        try:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox WHERE acked_ts IS NULL").fetchone()[0])
        except sqlite3.Error:
            return -1

    @property
    def size_bytes(self) -> int:
        return int(self._bytes)

    def put(self, kind: Kind, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        try:
            self._make_room(len(payload))
            cur = self._db.execute(
                "INSERT INTO outbox (kind, topic, payload, qos, retain, created_ts) VALUES (?, ?, ?, ?, ?, ?)",
                (int(kind), topic, payload, qos, int(retain), time.time()),
            )
        except sqlite3.Error as err:
            raise OutboxError(f"outbox write failed: {err}") from err
        self._rows += 1
        self._bytes += len(payload)
        return int(cur.lastrowid or 0)

    def acknowledge(self, row_id: int, keep: bool) -> None:
        """The broker has it. Alerts and explanations are kept a little longer (`keep`), so
        they can be sent again if the broker crashes and comes back without its sessions."""
        if not keep:
            self.delete(row_id)
            return
        try:
            self._db.execute("UPDATE outbox SET acked_ts = ? WHERE id = ?", (time.time(), row_id))
        except sqlite3.Error as err:
            raise OutboxError(f"outbox update failed: {err}") from err

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group many writes into one commit (a batch of PUBACKs: one WAL commit, not hundreds)."""
        try:  # a closed outbox (PUBACKs handed over after shutdown) raises here, as OutboxError
            nested = self._db.in_transaction
            if not nested:
                self._db.execute("BEGIN")
        except sqlite3.Error as err:
            raise OutboxError(f"outbox write failed: {err}") from err
        if nested:
            yield
            return
        try:
            yield
        finally:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                raise OutboxError(f"outbox commit failed: {err}") from err

    def requeue_acknowledged(self, since_ts: float) -> int:
        """Make messages acknowledged since `since_ts` pending again; returns how many."""
        try:
            cur = self._db.execute("UPDATE outbox SET acked_ts = NULL WHERE acked_ts >= ?", (since_ts,))
        except sqlite3.Error as err:
            raise OutboxError(f"outbox update failed: {err}") from err
        return int(cur.rowcount)

    def forget_acknowledged(self, before_ts: float) -> None:
        """Delete kept messages acknowledged before `before_ts` (their redelivery window is over)."""
        try:
            cur = self._db.execute("DELETE FROM outbox WHERE acked_ts IS NOT NULL AND acked_ts < ?", (before_ts,))
        except sqlite3.Error as err:
            raise OutboxError(f"outbox delete failed: {err}") from err
        if cur.rowcount:
            self._recount()

    def _recount(self) -> None:
        """Re-read the row and byte totals after a bulk delete."""
        self._rows, self._bytes = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
        ).fetchone()

    def delete(self, row_id: int) -> None:
        try:
            row = self._db.execute("SELECT LENGTH(payload) FROM outbox WHERE id = ?", (row_id,)).fetchone()
            if row is None:
                return
            self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
        except sqlite3.Error as err:
            raise OutboxError(f"outbox delete failed: {err}") from err
        self._rows -= 1
        self._bytes -= int(row[0])

    def pending(self, limit: int, exclude: set[int] | frozenset[int] = frozenset()) -> list[OutboxRow]:
        """Oldest first within each kind, alerts before everything else."""
        self._expire()
        try:
            rows = self._db.execute(
                "SELECT id, kind, topic, payload, qos, retain, created_ts FROM outbox WHERE acked_ts IS NULL "
                "ORDER BY kind, id LIMIT ?",
                (limit + len(exclude),),
            ).fetchall()
        except sqlite3.Error as err:
            raise OutboxError(f"outbox read failed: {err}") from err
        out = [
            OutboxRow(r[0], Kind(r[1]), r[2], bytes(r[3]), r[4], bool(r[5]), r[6]) for r in rows if r[0] not in exclude
        ]
        return out[:limit]

    def _expire(self) -> None:
        now = time.time()
        expired = 0
        try:
            cur = self._db.execute("DELETE FROM outbox WHERE created_ts < ?", (now - self._ttl_s,))
            expired += cur.rowcount
            for kind, ttl_s in self._kind_ttl_s.items():
                cur = self._db.execute("DELETE FROM outbox WHERE kind = ? AND created_ts < ?", (int(kind), now - ttl_s))
                expired += cur.rowcount
        except sqlite3.Error as err:
            raise OutboxError(f"outbox expiry failed: {err}") from err
        if expired:
            self.expired += expired
            log.warning("outbox: dropped %d messages past their time to live", expired)
            self._recount()

    def _make_room(self, incoming_bytes: int) -> None:
        """Overflow policy: evict the least important, oldest messages (explanations first,
        alerts last) until the new one fits."""
        while self._rows and (self._rows + 1 > self._max_rows or self._bytes + incoming_bytes > self._max_bytes):
            victim = self._db.execute(
                "SELECT id, LENGTH(payload) FROM outbox ORDER BY kind DESC, id LIMIT 1"
            ).fetchone()
            if victim is None:
                break
            self._db.execute("DELETE FROM outbox WHERE id = ?", (victim[0],))
            self._rows -= 1
            self._bytes -= int(victim[1])
            self.evicted += 1

    # -- small key/value state (alert policy snapshot) --------------------------------

    def save_state(self, key: str, value: str) -> None:
        try:
            self._db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, value))
        except sqlite3.Error as err:
            raise OutboxError(f"state write failed: {err}") from err

    def load_state(self, key: str) -> str | None:
        try:
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as err:
            raise OutboxError(f"state read failed: {err}") from err
        return None if row is None else str(row[0])

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error:
            pass


def _create_private(path: Path) -> None:
    """The outbox holds contacts and destinations: its file is 0600 (SQLite gives its -wal and -shm
    files the database file's mode). An existing file is tightened; a symlink is refused."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as err:
        raise OutboxError(f"cannot open outbox {path}: {err}") from err
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
