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
from app.models import Clinic
from app.models.base import utcnow

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


def test_primary_keys_are_random_uuids(app):
    first, second = _clinic(name="One"), _clinic(name="Two")
    db.session.add_all([first, second])
    db.session.commit()

    assert isinstance(first.id, uuid.UUID)
    assert first.id.version == 4
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
