"""The embedded default (SQLite) under concurrent writers never answers "database is locked".

Webhooks (gunicorn threads and workers) and the RQ worker write the same SQLite file at once. Each transaction here
reads and then writes, the pattern that fails at once under SQLite's default deferred transactions; the app's
``BEGIN IMMEDIATE`` plus the 5 s busy timeout must make every one of them wait its turn instead.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from contextlib import closing

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Clinic, Message

pytestmark = pytest.mark.sqlite_only

THREADS = 8
TRANSACTIONS = 25  # per thread; each one reads, then writes


def _work(app, worker: int, start: threading.Barrier, created: list, errors: list) -> None:
    try:
        with app.app_context():
            start.wait()
            for n in range(TRANSACTIONS):
                # Transaction 1: read, then insert.
                db.session.scalar(sa.select(sa.func.count()).select_from(Clinic))
                clinic = Clinic(name=f"w{worker}-{n}", country="BW", timezone="Africa/Gaborone", default_language="tn")
                db.session.add(clinic)
                db.session.commit()
                clinic_id = clinic.id
                db.session.expunge_all()
                # Transaction 2: read the row back, then update it.
                row = db.session.get(Clinic, clinic_id)
                row.name = f"{row.name}-updated"
                db.session.commit()
                created.append(clinic_id)
                # Transaction 3: a write that is rolled back must leave nothing behind (real transactions, not
                # statement-by-statement autocommit).
                db.session.add(Clinic(name="rolled back", country="BW", timezone="Africa/Gaborone"))
                db.session.flush()
                db.session.rollback()
            db.session.remove()
    except Exception as exc:  # recorded and asserted on in the main thread
        errors.append(exc)
        start.abort()


def test_concurrent_read_then_write_transactions_never_see_database_is_locked(app_factory, database_url):
    assert database_url.startswith("sqlite:///")
    app = app_factory()
    start = threading.Barrier(THREADS)
    created: list[uuid.UUID] = []
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_work, args=(app, i, start, created, errors), name=f"writer-{i}")
        for i in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a writer thread hung"

    assert errors == []
    assert len(created) == THREADS * TRANSACTIONS
    with app.app_context():
        rows = dict(db.session.execute(sa.select(Clinic.id, Clinic.name)).all())
        db.session.remove()
        db.engine.dispose()
    assert set(rows) == set(created)
    expected = {f"w{w}-{n}-updated" for w in range(THREADS) for n in range(TRANSACTIONS)}
    assert set(rows.values()) == expected


def test_every_connection_gets_wal_busy_timeout_and_foreign_keys(app_factory, database_url):
    app = app_factory()
    with app.app_context():
        # Two DBAPI connections open at once: the pragmas are set on each connection, not once per engine. Raw
        # connections, so that reading a pragma does not begin a (write-locking) transaction on either.
        first, second = db.engine.raw_connection(), db.engine.raw_connection()
        try:
            for connection in (first, second):
                cursor = connection.cursor()
                assert cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
                assert cursor.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
                assert cursor.execute("PRAGMA foreign_keys").fetchone()[0] == 1
                cursor.close()
        finally:
            first.close()
            second.close()
        db.engine.dispose()
    # WAL is a property of the file: a connection made outside the app sees it too.
    with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as outside:
        assert outside.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _another_writer_can_start(path: str) -> bool:
    """Whether a second connection could take the write lock right now (no waiting: ``timeout=0``)."""
    with closing(sqlite3.connect(path, timeout=0, isolation_level=None)) as other:
        try:
            other.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc)
            return False
        other.execute("ROLLBACK")
        return True


def test_webhooks_can_write_while_the_worker_waits_on_a_provider(app_factory, database_url, monkeypatch):
    from app.messaging.envelopes import SendResult
    from bots import sending as outbound

    path = database_url.removeprefix("sqlite:///")
    seen_during_send: list[bool] = []

    class SlowProvider:
        """Stands in for a provider call: while it is "on the network", is the database still writable?"""

        name = "slow"

        def send(self, message):
            seen_during_send.append(_another_writer_can_start(path))
            return SendResult(provider="fake", provider_id="fake-1")

    monkeypatch.setattr(outbound, "senders_for", lambda channel, config: [SlowProvider()])
    app = app_factory()
    with app.app_context():
        message = Message(direction="out", channel="sms", address="+26771234567", text="Dumela", status="queued")
        db.session.add(message)
        db.session.commit()
        message_id = str(message.id)
        db.session.remove()
        try:
            assert outbound.send_message(message_id) == "sent"
        finally:
            db.session.remove()
            db.engine.dispose()
    assert seen_during_send == [True]


def test_foreign_keys_are_enforced(app_factory):
    from app.models import User

    app = app_factory()
    with app.app_context():
        db.session.add(
            User(email="ghost@example.org", password_hash="x", role="staff", clinic_id=uuid.uuid4(), language="en")
        )
        with pytest.raises(sa.exc.IntegrityError):
            db.session.commit()
        db.session.rollback()
        db.session.remove()
        db.engine.dispose()
