"""The shared column types of ``app.models.base``: UTC-only timestamps and UUID primary keys, on both backends.

SQLite keeps no time zone and PostgreSQL converts ``timestamptz`` to the session's zone, so the only safe
contract is the one ``UTCDateTime`` promises: aware values in, aware UTC values out, naive values refused.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import StatementError

from app.extensions import db
from app.models import Clinic, base
from app.models.base import new_id, new_id_bytes, utcnow

# the UTC datetime column type stores naive values on SQLite
pytestmark = pytest.mark.both_backends

GABORONE = timezone(timedelta(hours=2))


def _clinic(**fields) -> Clinic:
    data = {"name": "Tlokweng Clinic", "country": "BW", "timezone": "Africa/Gaborone", "default_language": "tn"}
    data.update(fields)
    return Clinic(**data)


def _reload(clinic_id: uuid.UUID) -> Clinic:
    """The clinic as a brand-new session reads it back from the database (no identity-map shortcut)."""
    db.session.remove()
    clinic = db.session.get(Clinic, clinic_id)
    assert clinic is not None
    return clinic


def test_utcnow_is_aware_utc():
    now = utcnow()
    assert now.tzinfo is not None
    assert now.utcoffset() == timedelta(0)


def test_aware_datetime_round_trips_as_the_same_instant_in_utc(app):
    local = datetime(2026, 3, 14, 9, 30, 15, 123456, tzinfo=GABORONE)
    clinic = _clinic(created_at=local, updated_at=local)
    db.session.add(clinic)
    db.session.commit()

    created_at = _reload(clinic.id).created_at
    assert created_at.tzinfo is not None
    assert created_at.utcoffset() == timedelta(0)
    assert created_at == local
    assert created_at.replace(tzinfo=None) == datetime(2026, 3, 14, 7, 30, 15, 123456)


def test_default_timestamps_are_aware_utc_after_a_round_trip(app):
    clinic = _clinic()
    db.session.add(clinic)
    db.session.commit()

    reloaded = _reload(clinic.id)
    for value in (reloaded.created_at, reloaded.updated_at):
        assert value.tzinfo is not None
        assert value.utcoffset() == timedelta(0)


def test_stored_value_is_utc_in_the_database(app):
    """The database holds the UTC instant, not the clinic's wall-clock time (raw SQL, bypassing the type)."""
    local = datetime(2026, 3, 14, 23, 0, tzinfo=GABORONE)
    clinic = _clinic(created_at=local, updated_at=local)
    db.session.add(clinic)
    db.session.commit()

    if db.engine.dialect.name == "postgresql":
        raw = db.session.execute(
            sa.text("SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM clinics")
        ).scalar_one()
    else:
        raw = db.session.execute(sa.text("SELECT created_at FROM clinics")).scalar_one()
    assert str(raw).startswith("2026-03-14 21:00:00")


@pytest.mark.postgres_only
def test_values_come_back_in_utc_whatever_the_postgres_session_time_zone(app):
    local = datetime(2026, 7, 1, 12, 0, tzinfo=GABORONE)
    clinic = _clinic(created_at=local, updated_at=local)
    db.session.add(clinic)
    db.session.commit()
    clinic_id = clinic.id
    db.session.remove()

    db.session.execute(sa.text("SET TIME ZONE 'Asia/Kolkata'"))
    created_at = db.session.scalar(sa.select(Clinic.created_at).where(Clinic.id == clinic_id))
    assert created_at.utcoffset() == timedelta(0)
    assert created_at == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    db.session.rollback()


def test_naive_datetime_is_refused_on_insert(app):
    db.session.add(_clinic(created_at=datetime(2026, 3, 14, 9, 30)))  # naive on purpose
    with pytest.raises(StatementError) as excinfo:
        db.session.commit()
    assert isinstance(excinfo.value.orig, ValueError)
    assert "naive" in str(excinfo.value.orig)
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Clinic)) == 0


def test_naive_datetime_is_refused_in_a_query(app):
    db.session.add(_clinic())
    db.session.commit()
    naive = datetime(2030, 1, 1)  # naive on purpose
    with pytest.raises(StatementError) as excinfo:
        db.session.scalars(sa.select(Clinic).where(Clinic.created_at < naive)).all()
    assert isinstance(excinfo.value.orig, ValueError)
    db.session.rollback()
    aware = datetime(2030, 1, 1, tzinfo=UTC)
    assert len(db.session.scalars(sa.select(Clinic).where(Clinic.created_at < aware)).all()) == 1


def test_aware_comparisons_in_queries_use_the_utc_instant(app):
    """On SQLite timestamps compare as text, so a non-UTC bound must be converted before it is compared."""
    stored = datetime(2026, 3, 14, 7, 30, tzinfo=UTC)
    clinic = _clinic(created_at=stored, updated_at=stored)
    db.session.add(clinic)
    db.session.commit()

    just_before_in_gaborone = datetime(2026, 3, 14, 9, 29, tzinfo=GABORONE)  # 07:29 UTC
    just_after_in_gaborone = datetime(2026, 3, 14, 9, 31, tzinfo=GABORONE)  # 07:31 UTC
    query = sa.select(Clinic.id).where(Clinic.created_at > just_before_in_gaborone)
    assert db.session.scalars(query).all() == [clinic.id]
    query = sa.select(Clinic.id).where(Clinic.created_at > just_after_in_gaborone)
    assert db.session.scalars(query).all() == []


def test_primary_keys_are_time_ordered_uuids(app):
    first, second = _clinic(name="One"), _clinic(name="Two")
    db.session.add_all([first, second])
    db.session.commit()

    assert isinstance(first.id, uuid.UUID)
    assert (first.id.version, first.id.variant) == (7, uuid.RFC_4122)
    assert first.id != second.id
    reloaded = _reload(first.id)
    assert isinstance(reloaded.id, uuid.UUID)
    assert reloaded.id == first.id
    assert reloaded.name == "One"
    assert db.session.get(Clinic, uuid.uuid4()) is None


def test_uuid_column_type_in_the_database(app):
    db.session.add(_clinic())
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        data_type = db.session.execute(
            sa.text(
                "SELECT data_type FROM information_schema.columns WHERE table_name = 'clinics' AND column_name = 'id'"
            )
        ).scalar_one()
        assert data_type == "uuid"
    else:
        raw = db.session.execute(sa.text("SELECT id FROM clinics")).scalar_one()
        assert uuid.UUID(raw) == db.session.scalar(sa.select(Clinic.id))


@pytest.mark.parametrize("make", [lambda: new_id(), lambda: uuid.UUID(bytes=new_id_bytes(1)[0])], ids=["one", "bytes"])
def test_new_ids_are_uuid7_of_the_millisecond_they_were_made_in(monkeypatch, make):
    millis = 1_796_000_000_123  # 2026-11-30
    monkeypatch.setattr(base.time, "time_ns", lambda: millis * 1_000_000 + 999_999)

    made = [make() for _ in range(200)]

    assert all((key.version, key.variant) == (7, uuid.RFC_4122) for key in made)
    assert {key.int >> 80 for key in made} == {millis}  # the first 48 bits
    assert len(set(made)) == 200
    # 74 random bits: across 200 keys each of them takes both values (the version and variant bits never vary)
    varying = 0
    for key in made:
        varying |= key.int ^ made[0].int
    assert varying == (0xFFF << 64) | ((1 << 62) - 1)


def test_keys_made_later_sort_later(monkeypatch):
    """B-tree indexes take new keys at their right-hand edge: a later millisecond's key is always greater."""
    clock = iter(range(1_796_000_000_000, 1_796_000_000_050))
    monkeypatch.setattr(base.time, "time_ns", lambda: next(clock) * 1_000_000)

    singles = [new_id() for _ in range(25)]
    batches = [new_id_bytes(40) for _ in range(25)]

    assert singles == sorted(singles)
    assert all(batch == sorted(batch) for batch in batches)
    assert [b for batch in batches for b in batch] == sorted(b for batch in batches for b in batch)
