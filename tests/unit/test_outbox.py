from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge_slm.bus.outbox import Kind, Outbox, OutboxError


def make(tmp_path: Path, **kw: float) -> Outbox:
    return Outbox(
        tmp_path / "o.sqlite3",
        int(kw.get("max_rows", 100)),
        int(kw.get("max_bytes", 10_000)),
        float(kw.get("ttl_s", 3600)),
    )


def test_put_pending_delete_in_order(tmp_path: Path) -> None:
    box = make(tmp_path)
    r1 = box.put(Kind.EXPLANATION, "t/e", b"e1")
    r2 = box.put(Kind.ALERT, "t/a", b"a1")
    r3 = box.put(Kind.ALERT, "t/a", b"a2")
    assert [r.row_id for r in box.pending(10)] == [r2, r3, r1]  # alerts first, oldest first
    assert [r.row_id for r in box.pending(10, exclude={r2})] == [r3, r1]
    box.delete(r2)
    assert box.depth == 2 and box.size_bytes == 4


def test_survives_reopen(tmp_path: Path) -> None:
    box = make(tmp_path)
    box.put(Kind.ALERT, "t", b"x")
    box.save_state("k", "v")
    box.close()
    again = make(tmp_path)
    assert [r.payload for r in again.pending(5)] == [b"x"]
    assert again.load_state("k") == "v" and again.depth == 1


def test_overflow_evicts_least_important_first(tmp_path: Path) -> None:
    box = make(tmp_path, max_rows=3)
    box.put(Kind.ALERT, "a", b"1")
    box.put(Kind.EXPLANATION, "e", b"2")
    box.put(Kind.REPLY, "r", b"3")
    box.put(Kind.ALERT, "a", b"4")
    assert [r.payload for r in box.pending(10)] == [b"1", b"4", b"3"]
    assert box.evicted == 1


def test_byte_cap(tmp_path: Path) -> None:
    box = make(tmp_path, max_bytes=10)
    for i in range(5):
        box.put(Kind.ALERT, "a", b"%04d" % i)
    assert box.size_bytes <= 10 and box.depth == 2


def test_ttl_expiry(tmp_path: Path) -> None:
    box = make(tmp_path, ttl_s=0.0001)
    box.put(Kind.ALERT, "a", b"old")
    import time

    time.sleep(0.01)
    assert box.pending(10) == [] and box.expired == 1


def test_read_only_database_raises_outbox_error(tmp_path: Path) -> None:
    box = make(tmp_path)
    box._db.execute("PRAGMA query_only = 1")
    with pytest.raises(OutboxError, match="outbox write failed"):
        box.put(Kind.ALERT, "a", b"x")


def test_a_closed_outbox_raises_outbox_error_not_sqlite_errors(tmp_path: Path) -> None:
    box = make(tmp_path)
    box.close()  # PUBACKs handed over after shutdown land here: the publisher logs an OutboxError
    with pytest.raises(OutboxError, match="outbox write failed"), box.transaction():
        pass


def test_unopenable_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    with pytest.raises(OutboxError, match="cannot open outbox"):
        Outbox(blocker / "o.sqlite3", 10, 100, 10)


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(OutboxError):
        Outbox(path, 10, 100, 10)
    assert sqlite3.sqlite_version


def test_acknowledged_alerts_are_kept_for_redelivery_then_forgotten(tmp_path: Path) -> None:
    box = make(tmp_path)
    alert = box.put(Kind.ALERT, "a", b"alert")
    reply = box.put(Kind.REPLY, "r", b"reply")
    box.acknowledge(alert, keep=True)
    box.acknowledge(reply, keep=False)
    assert box.pending(10) == [] and box.depth == 1
    import time

    assert box.requeue_acknowledged(time.time() - 60) == 1
    assert [r.payload for r in box.pending(10)] == [b"alert"]
    box.acknowledge(alert, keep=True)
    box.forget_acknowledged(time.time() + 1)
    assert box.depth == 0 and box.requeue_acknowledged(0) == 0
