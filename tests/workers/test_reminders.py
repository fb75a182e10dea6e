"""The appointment jobs: due reminders into the outbox and missed appointments (retention is in
``tests/services/test_retention.py``).

The job functions run directly in the app context, on both backends and the real test Redis, with ``now`` passed
in (never waited for). Sending the reminders (the checks at send time, a real provider client, a real worker
killed mid-batch) is tested in ``tests/workers/test_reminder_sends.py``.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.extensions import db
from app.jobs import QUEUE_OUTBOUND, get_queue
from app.messaging.outbox import Outgoing, queue_many
from app.models import Appointment, AuditLog, Clinic, Message
from app.models.appointment import (
    STATUS_ATTENDED,
    STATUS_CANCELLED,
    STATUS_CONFIRMED,
    STATUS_MISSED,
    STATUS_RESCHEDULE_REQUESTED,
    STATUS_RESCHEDULED,
    STATUS_SCHEDULED,
)
from app.services import appointments
from app.services.upkeep import mark_missed, queue_due_reminders
from tests.conftest import make_clinic
from tests.factories import store_appointment

# reminder claiming: SKIP LOCKED on PostgreSQL, BEGIN IMMEDIATE on SQLite; bulk writes per dialect
pytestmark = pytest.mark.both_backends

GABORONE = ZoneInfo("Africa/Gaborone")  # UTC+2, no daylight saving
ACCRA = ZoneInfo("Africa/Accra")  # UTC+0
# Monday 4 March 2030, 12:00 in Gaborone: inside the default sending hours (07:00-20:00).
NOW = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
BOOKED = NOW - timedelta(days=10)  # when the test appointments were booked (and their reminders first planned)
DAY = timedelta(days=1)


def local(zone: ZoneInfo, *args: int) -> datetime:
    """A clinic wall-clock time as a UTC instant."""
    return datetime(*args, tzinfo=zone).astimezone(UTC)


def clinic(offsets: list[int] | None = None, *, timezone: str = "Africa/Gaborone", language: str = "tn",
           window: tuple[time, time] | None = None, name: str = "Tlokweng Clinic") -> Clinic:  # fmt: skip
    country = "GH" if timezone == "Africa/Accra" else "BW"
    made = make_clinic(name, country, timezone, language)
    if offsets is not None:
        made.reminder_offsets_minutes = offsets
    if window is not None:
        made.send_window_start, made.send_window_end = window
    db.session.commit()
    return made


_phones = iter(range(71_000_000, 79_999_999))


def book(at_clinic: Clinic, at: datetime, *, phone: str | None = None, language: str | None = None,
         patient_language: str | None = None, channel: str = "sms", status: str = STATUS_SCHEDULED,
         planned: datetime = BOOKED) -> Appointment:  # fmt: skip
    """An appointment as the API or an import leaves it: reminders planned when it was booked."""
    return store_appointment(at_clinic, at, phone=phone or f"+267{next(_phones)}", language=language,
                             patient_language=patient_language, channel=channel, status=status, planned=planned)  # fmt: skip


def reminders(appointment: Appointment | None = None) -> list[Message]:
    db.session.expire_all()
    query = select(Message).where(Message.kind == "reminder").order_by(Message.created_at, Message.dedupe_key)
    if appointment is not None:
        query = query.where(Message.appointment_id == appointment.id)
    return list(db.session.scalars(query))


def fresh(appointment: Appointment) -> Appointment:
    db.session.expire_all()
    return db.session.get(Appointment, appointment.id)


def sends_enqueued() -> list[str]:
    """The message ids the outbound queue's jobs will send (a job of its own, or a batch job's list), sorted."""
    ids = []
    for job in get_queue(QUEUE_OUTBOUND).get_jobs():
        (argument,) = job.args
        ids += argument if isinstance(argument, list) else [argument]
    return sorted(ids)


# --- queue_due_reminders -------------------------------------------------------------------------------------------


def test_a_due_reminder_is_written_once_with_its_send_job_and_the_next_one_is_planned(app, redis_conn):
    at = NOW + 3 * DAY  # Thursday 12:00 Gaborone: the 3-day reminder is due now, the 1-day one tomorrow
    appointment = book(clinic(), at)
    assert (appointment.next_reminder_at, appointment.next_reminder_offset) == (NOW, 4320)

    counts = queue_due_reminders(now=NOW)

    assert counts == {"due": 1, "queued": 1, "scheduled": 0, "duplicates": 0, "opted_out": 0, "dropped": 0,
                      "batches": 1}  # fmt: skip
    (message,) = reminders()
    assert message.dedupe_key == appointments.reminder_key(appointment, 4320)
    assert message.dedupe_key == f"reminder:{appointment.id}:4320:{int(at.timestamp())}"
    assert (message.direction, message.kind, message.status, message.channel) == ("out", "reminder", "queued", "sms")
    assert (message.address, message.clinic_id, message.appointment_id) == (
        appointment.patient.phone,
        appointment.clinic_id,
        appointment.id,
    )
    assert message.contact_id == appointment.patient.contact_id
    assert message.text == appointments.text_for(appointment, "appointment_reminder")
    assert (message.language, message.encoding, message.segments) == ("tn", "GSM-7", 1)
    assert message.send_at is None and message.attempts == 0
    assert get_queue(QUEUE_OUTBOUND).job_ids == [f"send-{message.id}"]  # one row: a job of its own
    after = fresh(appointment)
    assert (after.next_reminder_at, after.next_reminder_offset) == (at - DAY, 1440)
    assert after.reminders_sent == 0  # written is not sent: the send job counts it

    assert queue_due_reminders(now=NOW)["due"] == 0  # nothing is due any more at this instant
    assert len(reminders()) == 1 and len(sends_enqueued()) == 1


def test_exactly_one_reminder_per_offset_however_often_the_job_runs(app, redis_conn):
    at = NOW + 3 * DAY
    appointment = book(clinic(), at)
    for _ in range(3):
        queue_due_reminders(now=NOW)
    # A re-run over rows already done (e.g. the plan was reset by a re-import of the same appointment).
    appointments.plan_reminders(fresh(appointment), BOOKED)
    db.session.commit()
    assert queue_due_reminders(now=NOW)["duplicates"] == 1
    for when in (at - DAY, at - DAY + timedelta(minutes=1), at - timedelta(hours=1)):
        queue_due_reminders(now=when)

    keys = [m.dedupe_key for m in reminders(appointment)]
    assert sorted(keys) == sorted(appointments.reminder_key(appointment, offset) for offset in (4320, 1440))
    assert len(sends_enqueued()) == 2
    assert fresh(appointment).next_reminder_at is None


def test_a_job_that_was_behind_sends_only_the_latest_due_offset(app, redis_conn):
    at = NOW + 3 * DAY
    appointment = book(clinic(), at)
    late = at - DAY + timedelta(hours=2)  # both the 3-day and the 1-day reminder are due

    counts = queue_due_reminders(now=late)

    assert counts["queued"] == 1
    (message,) = reminders(appointment)
    assert message.dedupe_key == appointments.reminder_key(appointment, 1440)
    assert fresh(appointment).next_reminder_at is None
    assert queue_due_reminders(now=late + timedelta(hours=1))["due"] == 0


@pytest.mark.parametrize(
    ("appointment_language", "patient_language", "clinic_language", "expected"),
    [
        pytest.param("tn", "en", "en", "tn", id="appointment_first"),
        pytest.param("en", "tn", "tn", "en", id="appointment_over_patient_and_clinic"),
        pytest.param(None, "tn", "en", "tn", id="then_patient"),
        pytest.param(None, "en", "tn", "en", id="patient_over_clinic"),
        pytest.param(None, None, "tn", "tn", id="then_clinic_tn"),
        pytest.param(None, None, "en", "en", id="then_clinic_en"),
    ],
)
def test_the_reminder_language_is_the_appointments_else_the_patients_else_the_clinics(
    app, redis_conn, appointment_language, patient_language, clinic_language, expected
):
    appointment = book(clinic(language=clinic_language), NOW + 3 * DAY, language=appointment_language,
                       patient_language=patient_language)  # fmt: skip

    queue_due_reminders(now=NOW)

    (message,) = reminders(appointment)
    assert message.language == expected
    assert message.text.startswith({"en": "Thusa reminder:", "tn": "Dumela. Kgakololo ya Thusa:"}[expected])
    assert message.text == appointments.text_for(appointment, "appointment_reminder")
    assert "Tlokweng Clinic" in message.text


def test_the_reminder_goes_to_the_patients_preferred_channel(app, redis_conn):
    appointment = book(clinic(), NOW + 3 * DAY, channel="whatsapp")

    queue_due_reminders(now=NOW)

    (message,) = reminders(appointment)
    assert (message.channel, message.encoding, message.segments) == ("whatsapp", None, None)


def test_another_clinics_booking_does_not_move_this_clinics_reminders(app, redis_conn):
    """The channel is each clinic's own choice: a second clinic booking the number (with another channel, through
    the booking service, as its staff would) changes where its own reminders go, not where the first clinic's do."""
    mine = book(clinic(), NOW + 3 * DAY, phone="+26771234567", channel="whatsapp")
    other = clinic(timezone="Africa/Accra", language="en", name="Kumasi Clinic")
    theirs = appointments.create(None, other, patient_phone="+26771234567", appointment_datetime=NOW + 3 * DAY,
                                 patient_name="Someone Else", channel="sms")  # fmt: skip
    db.session.commit()

    queue_due_reminders(now=NOW)

    assert [m.channel for m in reminders(mine)] == ["whatsapp"]
    assert [m.channel for m in reminders(theirs)] == ["sms"]
    assert fresh(mine).record.name is None  # Kumasi's name stays Kumasi's


@pytest.mark.parametrize("who", ["opted_out", "erased"])
def test_opted_out_and_erased_patients_get_no_reminder_but_stay_planned(app, redis_conn, who):
    appointment = book(clinic(), NOW + 3 * DAY)
    if who == "opted_out":
        appointment.patient.contact.opted_out_at = NOW - DAY
    else:
        appointment.patient.erased_at = NOW - DAY
    db.session.commit()

    counts = queue_due_reminders(now=NOW)

    assert (counts["opted_out"], counts["queued"]) == (1, 0)
    assert reminders() == [] and sends_enqueued() == []
    assert fresh(appointment).next_reminder_offset == 1440  # planned on, in case they opt in again


def test_queue_many_respects_an_opt_out_it_did_not_expect(app, redis_conn):
    appointment = book(clinic(), NOW + 3 * DAY)
    appointment.patient.contact.opted_out_at = NOW
    db.session.commit()
    message = Outgoing(channel="sms", address=appointment.patient.phone, text="Thusa reminder", kind="reminder",
                       dedupe_key="reminder:x:1:2")  # fmt: skip

    result = queue_many([message], now=NOW)
    db.session.commit()

    assert (result.ids, result.opted_out, result.duplicates) == ([], 1, 0)
    assert reminders() == [] and sends_enqueued() == []


def test_queue_many_takes_only_kinds_the_caps_do_not_count(app):
    with pytest.raises(ValueError, match="api"):
        queue_many([Outgoing(channel="sms", address="+26771234567", text="x", kind="api")])


@pytest.mark.parametrize(
    "status",
    [STATUS_CANCELLED, STATUS_ATTENDED, STATUS_MISSED],
)
def test_an_appointment_no_longer_active_gets_no_reminder_and_no_plan(app, redis_conn, status):
    appointment = book(clinic(), NOW + 3 * DAY)
    appointment.status = status  # as if changed without re-planning
    db.session.commit()

    counts = queue_due_reminders(now=NOW)

    assert (counts["dropped"], counts["queued"]) == (1, 0)
    assert reminders() == []
    assert fresh(appointment).next_reminder_at is None


@pytest.mark.parametrize(
    "status", [STATUS_SCHEDULED, STATUS_CONFIRMED, STATUS_RESCHEDULE_REQUESTED, STATUS_RESCHEDULED]
)
def test_every_active_status_gets_its_reminder(app, redis_conn, status):
    book(clinic(), NOW + 3 * DAY, status=status)
    assert queue_due_reminders(now=NOW)["queued"] == 1


def test_a_late_job_outside_the_sending_hours_schedules_the_reminder_for_the_next_allowed_time(app, redis_conn):
    at = local(GABORONE, 2030, 3, 7, 12, 0)  # Thursday 12:00
    appointment = book(clinic([1440]), at)  # due Wednesday 12:00
    late = local(GABORONE, 2030, 3, 6, 21, 30)  # the worker was down until Wednesday 21:30

    counts = queue_due_reminders(now=late)

    assert (counts["scheduled"], counts["queued"]) == (1, 0)
    (message,) = reminders(appointment)
    assert (message.status, message.send_at) == ("scheduled", local(GABORONE, 2030, 3, 7, 7, 0))
    assert sends_enqueued() == []  # the sweeper releases it at 07:00


def test_a_late_job_drops_the_reminder_when_no_allowed_time_is_left_before_the_appointment(app, redis_conn):
    at = local(GABORONE, 2030, 3, 7, 6, 30)  # Thursday 06:30, before the sending hours open
    appointment = book(clinic([1440]), at)
    assert appointment.next_reminder_at == local(GABORONE, 2030, 3, 6, 7, 0)  # moved into Wednesday's hours
    late = local(GABORONE, 2030, 3, 6, 20, 30)

    counts = queue_due_reminders(now=late)

    assert (counts["dropped"], counts["queued"], counts["scheduled"]) == (1, 0, 0)
    assert reminders() == []
    assert fresh(appointment).next_reminder_at is None


def test_an_appointment_already_past_gets_no_reminder(app, redis_conn):
    appointment = book(clinic(), NOW + 3 * DAY)

    counts = queue_due_reminders(now=NOW + 4 * DAY)

    assert counts["dropped"] == 1 and reminders() == []
    assert fresh(appointment).next_reminder_at is None


def test_reminders_are_written_in_batches_with_one_send_job_each(app, redis_conn):
    at_clinic = clinic()
    booked = [book(at_clinic, NOW + 3 * DAY + timedelta(minutes=i)) for i in range(5)]

    counts = queue_due_reminders(now=NOW + timedelta(minutes=10), batch_size=2)

    assert (counts["due"], counts["queued"], counts["batches"]) == (5, 5, 3)
    written = reminders()
    assert sorted(m.appointment_id for m in written) == sorted(a.id for a in booked)
    assert sends_enqueued() == sorted(str(m.id) for m in written)
    assert len(get_queue(QUEUE_OUTBOUND).job_ids) == 3  # one send job per batch of the reminder job


def test_a_batch_that_fails_writes_nothing_and_the_next_run_does_it_all(app, redis_conn, monkeypatch):
    """A crash mid-batch: the batch's transaction rolls back, so no appointment is re-planned without its row."""
    from app.services import upkeep

    at_clinic = clinic()
    booked = [book(at_clinic, NOW + 3 * DAY + timedelta(minutes=i)) for i in range(4)]
    real_queue_many = upkeep.queue_many
    calls = []

    def dies_on_the_second_batch(messages, **kwargs):
        calls.append(len(messages))
        if len(calls) == 2:
            raise RuntimeError("the process died here")
        return real_queue_many(messages, **kwargs)

    monkeypatch.setattr(upkeep, "queue_many", dies_on_the_second_batch)
    with pytest.raises(RuntimeError):
        queue_due_reminders(now=NOW + timedelta(minutes=10), batch_size=2)
    db.session.rollback()
    assert len(reminders()) == 2  # the first batch committed with its rows
    assert len(sends_enqueued()) == 2

    monkeypatch.setattr(upkeep, "queue_many", real_queue_many)
    counts = queue_due_reminders(now=NOW + timedelta(minutes=10), batch_size=2)

    assert (counts["due"], counts["queued"]) == (2, 2)
    assert sorted(m.appointment_id for m in reminders()) == sorted(a.id for a in booked)
    assert len(sends_enqueued()) == 4


def _in_own_context(app, target, results: list, barrier: threading.Barrier) -> threading.Thread:
    def body():
        with app.app_context():
            try:
                barrier.wait(timeout=30)
                results.append(target())
            except BaseException as exc:  # noqa: BLE001 (reported by the test)
                results.append(exc)
            finally:
                db.session.remove()

    return threading.Thread(target=body)


@pytest.mark.postgres_only
def test_two_jobs_at_once_share_the_work_and_write_each_reminder_once(app, redis_conn):
    at_clinic = clinic()
    booked = [book(at_clinic, NOW + 3 * DAY + timedelta(minutes=i % 30)) for i in range(240)]
    db.session.close()
    results: list = []
    barrier = threading.Barrier(2)
    threads = [
        _in_own_context(app, lambda: queue_due_reminders(now=NOW + timedelta(hours=1), batch_size=15), results, barrier)
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert all(isinstance(r, dict) for r in results), results
    assert sum(r["queued"] for r in results) == 240
    assert sum(r["due"] for r in results) == 240  # SKIP LOCKED: no appointment was taken by both
    written = reminders()
    assert len(written) == len({m.dedupe_key for m in written}) == 240
    assert sorted(m.appointment_id for m in written) == sorted(a.id for a in booked)
    assert len(sends_enqueued()) == 240


def test_two_writers_racing_on_the_same_reminders_write_each_once(app, redis_conn):
    """What the unique dedupe key guarantees even without the row locks (SQLite, or a re-run racing a run)."""
    at_clinic = clinic()
    booked = [book(at_clinic, NOW + 3 * DAY) for _ in range(50)]
    batch = [
        Outgoing(
            channel="sms",
            address=a.patient.phone,
            text="Thusa reminder",
            kind="reminder",
            clinic_id=a.clinic_id,
            appointment_id=a.id,
            dedupe_key=appointments.reminder_key(a, 4320),
        )  # fmt: skip
        for a in booked
    ]
    db.session.close()

    def write():
        result = queue_many(batch, now=NOW)
        db.session.commit()
        return result

    results: list = []
    barrier = threading.Barrier(2)
    threads = [_in_own_context(app, write, results, barrier) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert all(not isinstance(r, BaseException) for r in results), results
    assert sorted(len(r.ids) for r in results) == [0, 50]
    assert sorted(r.duplicates for r in results) == [0, 50]
    assert len(reminders()) == 50
    assert len(sends_enqueued()) == 50


# --- mark_missed -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timezone", "appointment_local", "now_utc", "missed"),
    [
        # Gaborone, UTC+2: Monday's day ends at 22:00 UTC.
        pytest.param("Africa/Gaborone", (2030, 3, 4, 16, 0), (2030, 3, 4, 21, 59), False, id="gaborone_2359_local"),
        pytest.param("Africa/Gaborone", (2030, 3, 4, 16, 0), (2030, 3, 4, 22, 0), True, id="gaborone_midnight_local"),
        pytest.param("Africa/Gaborone", (2030, 3, 5, 0, 30), (2030, 3, 4, 22, 0), False, id="gaborone_later_today"),
        pytest.param("Africa/Gaborone", (2030, 3, 4, 23, 30), (2030, 3, 4, 22, 0), True, id="gaborone_2330_yesterday"),
        # Accra, UTC+0: the same instants are still Monday there.
        pytest.param("Africa/Accra", (2030, 3, 4, 16, 0), (2030, 3, 4, 22, 0), False, id="accra_2200"),
        pytest.param("Africa/Accra", (2030, 3, 4, 16, 0), (2030, 3, 4, 23, 59), False, id="accra_2359"),
        pytest.param("Africa/Accra", (2030, 3, 4, 16, 0), (2030, 3, 5, 0, 0), True, id="accra_midnight"),
        pytest.param("Africa/Accra", (2030, 3, 4, 23, 30), (2030, 3, 5, 0, 0), True, id="accra_2330_yesterday"),
    ],
)
def test_an_appointment_is_missed_once_its_day_is_over_in_clinic_time(app, timezone, appointment_local, now_utc,
                                                                     missed):  # fmt: skip
    zone = ZoneInfo(timezone)
    appointment = book(clinic(timezone=timezone), local(zone, *appointment_local), planned=BOOKED)
    now = datetime(*now_utc, tzinfo=UTC)

    assert mark_missed(now=now) == (1 if missed else 0)

    after = fresh(appointment)
    assert (after.status, after.attended) == ((STATUS_MISSED, False) if missed else (STATUS_SCHEDULED, None))
    if missed:
        assert after.next_reminder_at is None


def test_mark_missed_touches_only_open_appointments_once_and_audits_the_count(app):
    gaborone, accra = clinic(), clinic(timezone="Africa/Accra", language="en", name="Kumasi Clinic")
    yesterday_gaborone = local(GABORONE, 2030, 3, 3, 10, 0)
    rows = {
        "scheduled": book(gaborone, yesterday_gaborone),
        "confirmed": book(gaborone, yesterday_gaborone, status=STATUS_CONFIRMED),
        "reschedule_requested": book(accra, local(ACCRA, 2030, 3, 3, 9, 0), status=STATUS_RESCHEDULE_REQUESTED),
        "attended": book(gaborone, yesterday_gaborone, status=STATUS_ATTENDED),
        "cancelled": book(gaborone, yesterday_gaborone, status=STATUS_CANCELLED),
        "today": book(gaborone, local(GABORONE, 2030, 3, 4, 8, 0)),
        "tomorrow": book(accra, local(ACCRA, 2030, 3, 5, 9, 0)),
    }

    assert mark_missed(now=NOW) == 3
    assert mark_missed(now=NOW) == 0  # idempotent

    status = {name: fresh(a).status for name, a in rows.items()}
    assert status == {"scheduled": "missed", "confirmed": "missed", "reschedule_requested": "missed",
                      "attended": "attended", "cancelled": "cancelled", "today": "scheduled",
                      "tomorrow": "scheduled"}  # fmt: skip
    (audit_row,) = db.session.scalars(select(AuditLog).where(AuditLog.action == "appointment.missed")).all()
    assert audit_row.actor_id is None
    assert audit_row.details == {"count": 3, "clinics": {str(gaborone.id): 2, str(accra.id): 1}}
    assert "+267" not in str(audit_row.details)
