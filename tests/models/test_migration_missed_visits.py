"""Migration 0013_missed_visits with rows in place: appointments (and the messages that point at them) survive the
upgrade and the downgrade on SQLite and PostgreSQL, the new columns start empty, and the new tables take rows."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from tests.models.test_migrations import (  # noqa: F401 (fixtures and helpers)
    _AT,
    APPOINTMENTS,
    CLINICS,
    CONTACTS,
    STAMP,
    _flask_db,
    _rows,
    _write,
    empty_database_url,
    migrations_app,
    postgres_migrations_url,
)

BEFORE, AFTER = "0011_skin_model_validation", "0013_missed_visits"
_ID = sa.Uuid()
PATIENTS = sa.table("patients", sa.column("phone"), sa.column("contact_id", _ID), sa.column("id", _ID),
                    sa.column("created_at", _AT), sa.column("updated_at", _AT))  # fmt: skip
MESSAGES = sa.table("messages", *(sa.column(n) for n in ("direction", "channel", "address", "status", "kind",
                                                           "attempts")),
                    sa.column("buttons", sa.JSON), sa.column("media", sa.JSON), sa.column("appointment_id", _ID),
                    sa.column("id", _ID), sa.column("created_at", _AT), sa.column("updated_at", _AT))  # fmt: skip


@pytest.fixture
def app(migrations_app):  # noqa: F811
    return migrations_app


def test_appointments_and_their_messages_survive_both_ways(app):
    _flask_db(app, "upgrade", BEFORE)
    clinic, contact, patient, visit = (uuid.uuid4() for _ in range(4))
    stamp = {"created_at": STAMP, "updated_at": STAMP}
    _write(app, [
        sa.insert(CLINICS).values(id=clinic, name="Clinic A", country="BW", timezone="Africa/Gaborone",
                                  default_language="tn", **stamp),
        sa.insert(CONTACTS).values(id=contact, address="+26771000000", **stamp),
        sa.insert(PATIENTS).values(id=patient, phone="+26771000000", contact_id=contact, **stamp),
        sa.insert(APPOINTMENTS).values(id=visit, clinic_id=clinic, patient_id=patient, appointment_datetime=STAMP,
                                       status="missed", reminders_sent=1, import_key="ref:1", channel="sms", **stamp),
        sa.insert(MESSAGES).values(id=uuid.uuid4(), direction="out", channel="sms", address="+26771000000",
                                   status="sent", kind="reminder", attempts=1, buttons=[], media=[],
                                   appointment_id=visit, **stamp),
    ])  # fmt: skip

    _flask_db(app, "upgrade", AFTER)
    assert _rows(app, sa.text("SELECT status, recovery_at, rebooked_from_id, series_id, series_number "
                              "FROM appointments")) == {("missed", None, None, None, None)}  # fmt: skip
    _write(app, [sa.text("INSERT INTO tracing_outcomes (id, appointment_id, clinic_id, outcome, created_at, "
                         "updated_at) VALUES (:id, :visit, :clinic, 'unreachable', :at, :at)").bindparams(
        sa.bindparam("id", uuid.uuid4(), _ID), sa.bindparam("visit", visit, _ID),
        sa.bindparam("clinic", clinic, _ID), sa.bindparam("at", STAMP, _AT))])  # fmt: skip
    with pytest.raises(sa.exc.IntegrityError):  # the outcome is checked by the database
        _write(app, [sa.text("UPDATE tracing_outcomes SET outcome = 'lost'")])

    _flask_db(app, "downgrade", BEFORE)
    assert _rows(app, sa.text("SELECT status, reminders_sent FROM appointments")) == {("missed", 1)}
    assert _rows(app, sa.text("SELECT COUNT(*) FROM messages WHERE appointment_id IS NOT NULL")) == {(1,)}
    _flask_db(app, "upgrade", AFTER)  # and up again
