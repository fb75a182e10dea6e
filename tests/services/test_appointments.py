"""The core appointment rules of ``app.services.appointments``.

Pure rules (reminder planning, sending hours, the texts) are tables over in-memory clinics; the changes (create,
reschedule, cancel, confirm, ...) run on PostgreSQL and are checked where they land: the appointment
row and the outbox. Appointment times are in 2030 and ``now`` is passed explicitly wherever a rule takes it.

The one-segment proof is :func:`test_every_appointment_sms_fits_one_gsm7_segment`: every
appointment text, in both languages, for every weekday, with the longest date and time and the longest clinic
names (a 200-character name, non-GSM characters), is GSM-7 and at most 160 septets.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from app.errors import Conflict, ValidationFailed
from app.extensions import db
from app.i18n import CATALOG
from app.i18n.gsm7 import fits_one_segment, septets
from app.messaging import inbox
from app.models import Appointment, AuditLog, Clinic, Contact, Message, Patient, PatientRecord
from app.models.appointment import (
    ACTIVE_STATUSES,
    STATUS_ATTENDED,
    STATUS_CANCELLED,
    STATUS_CONFIRMED,
    STATUS_MISSED,
    STATUS_RESCHEDULE_REQUESTED,
    STATUS_RESCHEDULED,
    STATUS_SCHEDULED,
    STATUSES,
)
from app.models.clinic import DEFAULT_OPENING_HOURS, SMS_NAME_LENGTH, default_opening_hours
from app.services import appointments, visits
from tests.conftest import make_clinic
from tests.factories import store_appointment

GABORONE = ZoneInfo("Africa/Gaborone")  # UTC+2, no daylight saving time
ACCRA = ZoneInfo("Africa/Accra")  # UTC+0, no daylight saving time
LONDON = ZoneInfo("Europe/London")  # daylight saving from 2030-03-31 01:00 UTC
PHONE = "+26771234567"


def local(day: str, at: str, zone: ZoneInfo = GABORONE) -> datetime:
    """A clinic wall-clock time as the UTC instant the services work with."""
    return datetime.fromisoformat(f"{day}T{at}").replace(tzinfo=zone).astimezone(UTC)


def clinic_in_memory(**fields) -> Clinic:
    """A clinic that is never stored: the column defaults written out (they apply only on insert)."""
    values = {"name": "Tlokweng Clinic", "country": "BW", "timezone": "Africa/Gaborone", "default_language": "tn",
              "reminder_offsets_minutes": [4320, 1440], "send_window_start": time(7, 0),
              "send_window_end": time(20, 0), "booking_confirmation": False,
              "opening_hours": default_opening_hours(), "slot_minutes": 30, "slot_capacity": 4}  # fmt: skip
    values.update(fields)
    return Clinic(**values)


# --- planning reminders -----------------------------------------------------------------------------------------

# 2030-03-05 is a Tuesday. Each case: clinic fields, appointment (day, local time), now (day, local time), status,
# after_offset → expected (send day, local time) or None, and the offset.
PLANS = {
    "3 days before": ({}, ("2030-03-05", "09:00"), ("2030-03-01", "08:00"), STATUS_SCHEDULED, None,
                      (("2030-03-02", "09:00"), 4320)),
    "exact minutes": ({"reminder_offsets_minutes": [90]}, ("2030-03-05", "09:00"), ("2030-03-01", "08:00"),
                      STATUS_SCHEDULED, None, (("2030-03-05", "07:30"), 90)),
    "offsets in any order": ({"reminder_offsets_minutes": [60, 4320, 1440]}, ("2030-03-05", "09:00"),
                             ("2030-03-01", "08:00"), STATUS_SCHEDULED, None, (("2030-03-02", "09:00"), 4320)),
    "past offset skipped": ({}, ("2030-03-05", "09:00"), ("2030-03-02", "10:00"), STATUS_SCHEDULED, None,
                            (("2030-03-04", "09:00"), 1440)),
    "offset due exactly now skipped": ({}, ("2030-03-05", "09:00"), ("2030-03-02", "09:00"), STATUS_SCHEDULED,
                                       None, (("2030-03-04", "09:00"), 1440)),
    "every offset passed": ({}, ("2030-03-05", "09:00"), ("2030-03-04", "10:00"), STATUS_SCHEDULED, None, None),
    "before sending hours: moved to the window's start": (
        {"reminder_offsets_minutes": [1440]}, ("2030-03-05", "06:30"), ("2030-03-01", "08:00"), STATUS_SCHEDULED,
        None, (("2030-03-04", "07:00"), 1440)),
    "after sending hours: moved to the next morning": (
        {"reminder_offsets_minutes": [1440]}, ("2030-03-05", "21:00"), ("2030-03-01", "08:00"), STATUS_SCHEDULED,
        None, (("2030-03-05", "07:00"), 1440)),
    "at the window's end: moved to the next morning": (
        {"reminder_offsets_minutes": [1440]}, ("2030-03-05", "20:00"), ("2030-03-01", "08:00"), STATUS_SCHEDULED,
        None, (("2030-03-05", "07:00"), 1440)),
    "at the window's start: kept": (
        {"reminder_offsets_minutes": [1440]}, ("2030-03-05", "07:00"), ("2030-03-01", "08:00"), STATUS_SCHEDULED,
        None, (("2030-03-04", "07:00"), 1440)),
    "moved reminder not before the visit: dropped": (
        {"reminder_offsets_minutes": [60]}, ("2030-03-05", "06:30"), ("2030-03-01", "08:00"), STATUS_SCHEDULED,
        None, None),
    "moved reminder at the visit's time: dropped": (
        {"reminder_offsets_minutes": [30]}, ("2030-03-05", "07:00"), ("2030-03-01", "08:00"), STATUS_SCHEDULED,
        None, None),
    "every offset moved past the visit": (
        {"reminder_offsets_minutes": [600, 120, 60]}, ("2030-03-05", "06:45"), ("2030-03-01", "08:00"),
        STATUS_SCHEDULED, None, None),
    "custom window": ({"send_window_start": time(10, 0), "send_window_end": time(12, 0)}, ("2030-03-05", "09:00"),
                      ("2030-03-01", "08:00"), STATUS_SCHEDULED, None, (("2030-03-02", "10:00"), 4320)),
    "after the 3-day one was sent": ({}, ("2030-03-05", "09:00"), ("2030-03-02", "09:00"), STATUS_SCHEDULED, 4320,
                                     (("2030-03-04", "09:00"), 1440)),
    "after the last one was sent": ({}, ("2030-03-05", "09:00"), ("2030-03-04", "09:00"), STATUS_SCHEDULED, 1440,
                                    None),
    "after_offset plans only smaller ones": ({}, ("2030-03-05", "09:00"), ("2030-03-01", "08:00"),
                                             STATUS_SCHEDULED, 2000, (("2030-03-04", "09:00"), 1440)),
    "appointment already passed": ({}, ("2030-03-05", "09:00"), ("2030-03-05", "09:00"), STATUS_SCHEDULED, None,
                                   None),
    "no offsets": ({"reminder_offsets_minutes": []}, ("2030-03-05", "09:00"), ("2030-03-01", "08:00"),
                   STATUS_SCHEDULED, None, None),
    "Accra (UTC+0)": ({"timezone": "Africa/Accra"}, ("2030-03-05", "09:00"), ("2030-03-01", "08:00"),
                      STATUS_SCHEDULED, None, (("2030-03-02", "09:00"), 4320)),
    "Accra, before its sending hours": ({"timezone": "Africa/Accra", "reminder_offsets_minutes": [1440]},
                                        ("2030-03-05", "06:00"), ("2030-03-01", "08:00"), STATUS_SCHEDULED, None,
                                        (("2030-03-04", "07:00"), 1440)),
}  # fmt: skip


@pytest.mark.parametrize(("fields", "at", "now", "status", "after", "expected"), PLANS.values(), ids=PLANS.keys())
def test_next_reminder(fields, at, now, status, after, expected):
    clinic = clinic_in_memory(**fields)
    zone = ZoneInfo(clinic.timezone)

    planned = appointments.next_reminder(clinic, local(*at, zone), status, local(*now, zone), after_offset=after)

    assert planned == ((local(*expected[0], zone), expected[1]) if expected else (None, None))


@pytest.mark.parametrize("status", STATUSES)
def test_only_active_appointments_get_reminders(status):
    clinic = clinic_in_memory()
    planned = appointments.next_reminder(clinic, local("2030-03-05", "09:00"), status, local("2030-03-01", "08:00"))

    expected = (local("2030-03-02", "09:00"), 4320) if status in ACTIVE_STATUSES else (None, None)
    assert planned == expected


def test_offsets_are_exact_durations_not_calendar_days():
    """Three days before is 72 hours before: across a daylight-saving change the wall-clock hour differs. Botswana
    and Ghana have no such change, so there the reminder keeps the appointment's wall-clock time."""
    london = clinic_in_memory(timezone="Europe/London", reminder_offsets_minutes=[4320])
    at = datetime(2030, 4, 1, 9, 0, tzinfo=LONDON)  # summer time (UTC+1) since Sunday 31 March

    send_at, _ = appointments.next_reminder(london, at.astimezone(UTC), STATUS_SCHEDULED, local("2030-03-01", "08:00"))

    assert send_at == at.astimezone(UTC) - timedelta(hours=72)
    assert send_at.astimezone(LONDON).time() == time(8, 0)  # winter time (UTC+0): an hour earlier on the clock
    for zone in (GABORONE, ACCRA):
        clinic = clinic_in_memory(timezone=zone.key, reminder_offsets_minutes=[4320, 1440, 1])
        at = datetime(2030, 4, 1, 9, 0, tzinfo=zone)
        for offset in (4320, 1440, 1):
            planned = appointments.next_reminder(clinic, at.astimezone(UTC), STATUS_SCHEDULED,
                                                 at.astimezone(UTC) - timedelta(minutes=offset + 1))  # fmt: skip
            assert planned == (at.astimezone(UTC) - timedelta(minutes=offset), offset)
            assert planned[0].astimezone(zone).time() == (at - timedelta(minutes=offset)).time()


def test_plan_reminders_sets_the_appointment_fields():
    clinic = clinic_in_memory()
    appointment = Appointment(clinic=clinic, appointment_datetime=local("2030-03-05", "09:00"),
                              status=STATUS_SCHEDULED)  # fmt: skip

    appointments.plan_reminders(appointment, local("2030-03-01", "08:00"))
    assert (appointment.next_reminder_at, appointment.next_reminder_offset) == (local("2030-03-02", "09:00"), 4320)

    appointments.plan_reminders(appointment, local("2030-03-02", "09:05"), after_offset=4320)
    assert (appointment.next_reminder_at, appointment.next_reminder_offset) == (local("2030-03-04", "09:00"), 1440)

    appointment.status = STATUS_CANCELLED
    appointments.plan_reminders(appointment, local("2030-03-02", "09:05"))
    assert (appointment.next_reminder_at, appointment.next_reminder_offset) == (None, None)


# (offset planned next, minutes before the appointment it is now) → offset to send
DUE = [
    (4320, 4320, 4320),
    (4320, 4000, 4320),  # only the 3-day one is due
    (4320, 1440, 1440),  # the job was behind: both are due, only the later one goes
    (4320, 30, 60),  # all three due: the latest, the 1-hour one
    (1440, 30, 60),
    (1440, 2000, 1440),  # nothing due yet: the planned one
    (None, 30, None),  # nothing planned
]


@pytest.mark.parametrize(("planned", "minutes_before", "expected"), DUE)
def test_due_offset_sends_only_the_latest_due(planned, minutes_before, expected):
    at = local("2030-03-05", "09:00")
    appointment = Appointment(clinic=clinic_in_memory(reminder_offsets_minutes=[4320, 1440, 60]),
                              appointment_datetime=at, next_reminder_offset=planned)  # fmt: skip

    assert appointments.due_offset(appointment, at - timedelta(minutes=minutes_before)) == expected


# (local time) → inside the default 07:00-20:00 window?
WINDOW = [("06:59", False), ("07:00", True), ("12:00", True), ("19:59", True), ("20:00", False), ("23:30", False),
          ("00:00", False)]  # fmt: skip


@pytest.mark.parametrize(("clock", "inside"), WINDOW)
def test_sending_hours(clock, inside):
    clinic = clinic_in_memory()
    at = local("2030-03-05", clock)

    assert appointments.in_send_window(clinic, at) is inside
    expected = at if inside else local("2030-03-05" if clock < "07:00" else "2030-03-06", "07:00")
    assert appointments.next_send_time(clinic, at) == expected


def test_reminder_key_is_per_appointment_offset_and_time():
    appointment = Appointment(appointment_datetime=datetime(2030, 3, 5, 7, 0, tzinfo=UTC))
    appointment.id = uuid.UUID(int=1)

    key = appointments.reminder_key(appointment, 1440)

    assert key == f"reminder:{appointment.id}:1440:{int(datetime(2030, 3, 5, 7, 0, tzinfo=UTC).timestamp())}"
    appointment.appointment_datetime += timedelta(days=1)
    assert appointments.reminder_key(appointment, 1440) != key


# --- texts ------------------------------------------------------------------------------------------------------

WHEN_CASES = [
    ("en", "2030-03-04", "07:30", "Monday 04/03 at 07:30"),
    ("tn", "2030-03-04", "07:30", "Mosupologo 04/03 ka 07:30"),
    ("en", "2030-03-05", "09:00", "Tuesday 05/03 at 09:00"),
    ("tn", "2030-03-05", "09:00", "Labobedi 05/03 ka 09:00"),
    ("tn", "2030-03-08", "16:30", "Labotlhano 08/03 ka 16:30"),
    ("en", "2030-12-31", "23:59", "Tuesday 31/12 at 23:59"),
    ("tn", "2030-03-10", "00:00", "Tshipi 10/03 ka 00:00"),
    (None, "2030-03-09", "12:00", "Saturday 09/03 at 12:00"),  # unknown language: English
]


@pytest.mark.parametrize(("language", "day", "clock", "expected"), WHEN_CASES)
def test_format_when_in_clinic_time(language, day, clock, expected):
    clinic = clinic_in_memory()
    assert appointments.format_when(clinic, local(day, clock), language) == expected


def test_format_when_uses_the_clinics_zone():
    at = datetime(2030, 3, 5, 23, 30, tzinfo=UTC)
    assert appointments.format_when(clinic_in_memory(), at, "en") == "Wednesday 06/03 at 01:30"
    assert appointments.format_when(clinic_in_memory(timezone="Africa/Accra"), at, "en") == "Tuesday 05/03 at 23:30"


def _appointment(clinic: Clinic, at: datetime, language: str | None, patient_language: str | None = None):
    patient = Patient(phone=PHONE, contact=Contact(address=PHONE, language=patient_language))
    return Appointment(clinic=clinic, patient=patient, appointment_datetime=at, language=language)


@pytest.mark.parametrize(("own", "patients", "clinics", "expected"), [
    ("en", "tn", "tn", "en"),
    (None, "en", "tn", "en"),
    (None, None, "tn", "tn"),
    (None, None, "en", "en"),
])  # fmt: skip
def test_language_of(own, patients, clinics, expected):
    appointment = _appointment(clinic_in_memory(default_language=clinics), local("2030-03-05", "09:00"), own, patients)
    assert appointments.language_of(appointment) == expected


# Every appointment SMS that names the clinic; the reminder, moved and booked texts above all.
SMS_KEYS = sorted(key for key, text in CATALOG.items() if key.startswith("appointment_") and text.channel == "sms"
                  and "{clinic}" in text.en)  # fmt: skip
NAMES = {
    "200 characters": ("Tlokweng Main Clinic Extension " * 7)[:200],
    "200 characters, no spaces": "T" * 200,
    "non-GSM letters": "Tšhabong Clinic",
    "non-GSM letters, long": "Tšhabong Ŝéŧšwāna Pharmacy & Clinic of the Kgalagadi District",
    "other scripts": "诊所 Klinik ✚ 🏥 Gaborone West",
    "exactly 30": "Mogoditshane Main Clinic Ext 2",
    "short name": ("Princess Marina Hospital Outpatient Department", "PMH Outpatients"),
}
# Every weekday, each with the longest times; dates with the widest day and month.
MOMENTS = [datetime.combine(datetime(2030, 12, 23).date() + timedelta(days=d), time(h, m))
           for d in range(7) for h, m in ((23, 59), (10, 10))] + [datetime(2030, 12, 31, 16, 30)]  # fmt: skip


def test_the_texts_under_test_include_the_ones_the_issue_names():
    assert {"appointment_reminder", "appointment_moved", "appointment_booked", "appointment_recovery"} <= set(SMS_KEYS)


@pytest.mark.parametrize("name", NAMES.values(), ids=NAMES.keys())
@pytest.mark.parametrize("language", ["en", "tn"])
@pytest.mark.parametrize("key", SMS_KEYS)
def test_every_appointment_sms_fits_one_gsm7_segment(key, language, name):
    full, short = name if isinstance(name, tuple) else (name, None)
    clinic = clinic_in_memory(name=full, short_name=short)
    assert len(clinic.sms_name) <= SMS_NAME_LENGTH
    for moment in MOMENTS:
        appointment = _appointment(clinic, moment.replace(tzinfo=GABORONE).astimezone(UTC), language)
        text = appointments.text_for(appointment, key)
        assert fits_one_segment(text), (len(text), septets(text), text)
        assert clinic.sms_name in text
        if "{when}" in CATALOG[key].en:
            assert appointments.format_when(clinic, appointment.appointment_datetime, language) in text


def test_reminder_fits_with_gsm7_extension_characters_in_the_name():
    clinic = clinic_in_memory(name="[Main] {East} ~ Clinic|North^€")
    appointment = _appointment(clinic, datetime(2030, 12, 25, 23, 59, tzinfo=GABORONE).astimezone(UTC), "en")

    assert fits_one_segment(appointments.text_for(appointment, "appointment_reminder"))


def test_text_for_fills_clinic_and_time_in_the_appointments_language():
    clinic = clinic_in_memory(name="Tšhabong Clinic")
    appointment = _appointment(clinic, local("2030-03-05", "09:00"), None, "tn")

    assert appointments.text_for(appointment, "appointment_reminder") == (
        "Dumela. Kgakololo ya Thusa: o tla etela Tshabong Clinic ka Labobedi 05/03 ka 09:00. Araba 1 = Ee, "
        "2 = Fetola letlha, 3 = Ga ke kgone go tla."
    )
    appointment.language = "en"
    assert appointments.text_for(appointment, "appointment_booked") == (
        "Thusa: your visit to Tshabong Clinic is booked for Tuesday 05/03 at 09:00. We will send you a reminder "
        "before it."
    )


def test_replies_are_asked_for_by_digits_never_by_carrier_keywords():
    for key in SMS_KEYS:
        for language in ("en", "tn"):
            words = set(getattr(CATALOG[key], language).upper().replace(",", " ").replace(".", " ").split())
            assert not words & {"STOP", "CANCEL", "YES", "UNSUBSCRIBE", "END", "QUIT", "OPTOUT", "REVOKE"}, (
                key,
                language,
            )


# --- free slots -------------------------------------------------------------------------------------------------


book = store_appointment  # stored directly: the rules under test are not the booking's


def slots_local(slots: list[datetime]) -> list[str]:
    return [s.astimezone(GABORONE).strftime("%a %H:%M") for s in slots]


def test_free_slots_start_after_the_lead_time(clinic):
    assert slots_local(appointments.free_slots(clinic, now=local("2030-03-05", "08:00"))) == [
        "Tue 10:00", "Tue 10:30", "Tue 11:00"]  # fmt: skip
    assert slots_local(appointments.free_slots(clinic, now=local("2030-03-05", "08:01"))) == [
        "Tue 10:30", "Tue 11:00", "Tue 11:30"]  # fmt: skip


def test_free_slots_skip_full_slots_and_count_only_active_appointments(clinic):
    now = local("2030-03-05", "07:00")
    for i in range(4):  # full: four active appointments start within 09:30-10:00
        book(clinic, local("2030-03-05", f"09:{30 + i * 5}"), phone=f"+2677123450{i}")
    for i in range(3):  # three active and two no longer active: room for one more
        book(clinic, local("2030-03-05", "10:00"), phone=f"+2677223450{i}")
    book(clinic, local("2030-03-05", "10:00"), phone="+26773234508", status=STATUS_CANCELLED)
    book(clinic, local("2030-03-05", "10:00"), phone="+26773234509", status=STATUS_MISSED)

    assert slots_local(appointments.free_slots(clinic, now=now)) == ["Tue 09:00", "Tue 10:00", "Tue 10:30"]


def test_free_slots_exclude_the_appointment_being_moved(clinic):
    now = local("2030-03-05", "07:00")
    taken = [book(clinic, local("2030-03-05", "09:00"), phone=f"+2677123450{i}") for i in range(4)]

    assert slots_local(appointments.free_slots(clinic, now=now, count=1)) == ["Tue 09:30"]
    assert slots_local(appointments.free_slots(clinic, now=now, count=1, exclude=taken[0].id)) == ["Tue 09:00"]


def test_free_slots_skip_closed_days_and_closing_time(clinic):
    # Friday 15:00: the lead time ends after closing (16:30); Saturday and Sunday are closed.
    assert slots_local(appointments.free_slots(clinic, now=local("2030-03-08", "15:00"))) == [
        "Mon 07:30", "Mon 08:00", "Mon 08:30"]  # fmt: skip
    # The last slot of a day must end by closing time.
    assert slots_local(appointments.free_slots(clinic, now=local("2030-03-08", "13:59"))) == [
        "Fri 16:00", "Mon 07:30", "Mon 08:00"]  # fmt: skip


def test_free_slots_with_several_intervals_and_other_settings(clinic):
    clinic.opening_hours = {"sat": [["08:00", "09:00"], ["14:00", "15:00"]]}
    clinic.slot_minutes, clinic.slot_capacity = 20, 1
    db.session.commit()
    book(clinic, local("2030-03-09", "08:20"))

    assert slots_local(appointments.free_slots(clinic, now=local("2030-03-05", "08:00"), count=5)) == [
        "Sat 08:00", "Sat 08:40", "Sat 14:00", "Sat 14:20", "Sat 14:40"]  # fmt: skip


def test_no_free_slots(clinic):
    clinic.opening_hours = {}
    db.session.commit()
    assert appointments.free_slots(clinic, now=local("2030-03-05", "08:00")) == []
    clinic.opening_hours = {day: [["07:30", "08:00"]] for day in DEFAULT_OPENING_HOURS}
    clinic.slot_capacity = 1
    db.session.commit()
    now = local("2030-03-05", "04:00")
    days = [now + timedelta(days=d) for d in range(appointments.SLOT_SEARCH_DAYS + 1)]
    for i, day in enumerate(d for d in days if d.astimezone(GABORONE).weekday() < 5):
        book(clinic, local(day.astimezone(GABORONE).date().isoformat(), "07:30"), phone=f"+267712{i:05d}")
    assert appointments.free_slots(clinic, now=now) == []


# --- changes ----------------------------------------------------------------------------------------------------


def outbox() -> list[Message]:
    db.session.expire_all()
    return list(db.session.scalars(select(Message).order_by(Message.created_at, Message.id)))


def reload(appointment: Appointment) -> Appointment:
    db.session.expire_all()
    return db.session.get(Appointment, appointment.id)


AT = datetime(2030, 3, 5, 7, 0, tzinfo=UTC)  # Tuesday 09:00 in Gaborone


@pytest.mark.parametrize("confirmation", [False, True], ids=["no confirmation", "booking confirmation"])
def test_create(clinic, confirmation):
    clinic.booking_confirmation = confirmation
    db.session.commit()

    appointment = appointments.create(None, clinic, patient_phone=PHONE, appointment_datetime=AT, language="en",
                                      patient_name="Kagiso Molefe", external_ref="R1")  # fmt: skip
    db.session.commit()

    appointment = reload(appointment)
    assert (appointment.status, appointment.import_key, appointment.language) == (STATUS_SCHEDULED, "ref:R1", "en")
    assert (appointment.patient.phone, appointment.record.name, appointment.patient.language) == (
        PHONE, "Kagiso Molefe", "en")  # fmt: skip
    assert appointment.next_reminder_offset == 4320
    sent = outbox()
    if confirmation:
        assert [(m.kind, m.dedupe_key, m.text) for m in sent] == [
            ("notice", f"booked:{appointment.id}:{int(AT.timestamp())}",
             "Thusa: your visit to Tlokweng Clinic is booked for Tuesday 05/03 at 09:00. We will send you a reminder "
             "before it.")]  # fmt: skip
    else:
        assert sent == []


@pytest.mark.parametrize(("first", "second"), [
    ({"external_ref": "R1"}, {"external_ref": "R1", "appointment_datetime": AT + timedelta(days=1)}),
    ({}, {}),  # no reference: the same number and time
])  # fmt: skip
def test_create_refuses_the_same_appointment_twice(clinic, first, second):
    appointments.create(None, clinic, **{"patient_phone": PHONE, "appointment_datetime": AT, **first})
    db.session.commit()

    with pytest.raises(Conflict):
        appointments.create(None, clinic, **{"patient_phone": PHONE, "appointment_datetime": AT, **second})


def test_create_refuses_a_past_time(clinic):
    with pytest.raises(ValidationFailed):
        appointments.create(None, clinic, patient_phone=PHONE, appointment_datetime=datetime(2020, 1, 1, tzinfo=UTC))


def test_reschedule_by_the_clinic_tells_the_patient(clinic):
    appointment = book(clinic, AT, language="tn")
    new_time = AT + timedelta(days=3)

    appointments.reschedule(None, appointment, new_time)
    db.session.commit()

    appointment = reload(appointment)
    assert (appointment.appointment_datetime, appointment.status) == (new_time, STATUS_RESCHEDULED)
    assert appointment.next_reminder_at == local("2030-03-05", "09:00")  # 3 days before the new time
    sent = outbox()
    assert [(m.kind, m.address, m.language, m.dedupe_key) for m in sent] == [
        ("notice", PHONE, "tn", f"moved:{appointment.id}:{int(new_time.timestamp())}")]  # fmt: skip
    assert sent[0].text == ("Thusa: letlha la go etela Tlokweng Clinic le fetotswe: Labotlhano 08/03 ka 09:00. "
                            "Araba ka 1 = Ee, 2 = Fetola letlha, 3 = Ga ke kgone go tla.")  # fmt: skip


def test_reschedule_by_the_patient_confirms_without_a_notice(clinic):
    appointment = book(clinic, AT)

    appointments.reschedule(None, appointment, AT + timedelta(hours=2), by_patient=True)
    db.session.commit()

    appointment = reload(appointment)
    assert (appointment.status, appointment.appointment_datetime) == (STATUS_CONFIRMED, AT + timedelta(hours=2))
    assert appointment.confirmed_at is not None
    assert outbox() == []


@pytest.mark.parametrize("status", [STATUS_CANCELLED, STATUS_ATTENDED, STATUS_MISSED])
def test_finished_appointments_cannot_change(clinic, status):
    appointment = book(clinic, AT, status=status)

    for change in (lambda: appointments.reschedule(None, appointment, AT + timedelta(days=1)),
                   lambda: appointments.cancel(None, appointment), lambda: appointments.confirm(None, appointment),
                   lambda: appointments.request_change(None, appointment)):  # fmt: skip
        with pytest.raises(Conflict):
            change()


def test_reschedule_to_a_past_time_is_refused(clinic):
    appointment = book(clinic, AT)
    with pytest.raises(ValidationFailed):
        appointments.reschedule(None, appointment, datetime(2020, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize("by_patient", [False, True], ids=["by the clinic", "by the patient"])
def test_cancel(clinic, by_patient):
    appointment = book(clinic, AT, language="en")
    appointments.plan_reminders(appointment, local("2030-03-01", "08:00"))

    appointments.cancel(None, appointment, by_patient=by_patient)
    db.session.commit()

    appointment = reload(appointment)
    assert (appointment.status, appointment.cancelled_by) == (STATUS_CANCELLED, "patient" if by_patient else "clinic")
    assert (appointment.next_reminder_at, appointment.next_reminder_offset) == (None, None)
    sent = [(m.kind, m.text) for m in outbox()]
    assert sent == (
        []
        if by_patient
        else [
            (
                "notice",
                "Thusa: sorry, your visit to Tlokweng Clinic on Tuesday 05/03 at "
                "09:00 is called off. Call the clinic to book another date.",
            )
        ]
    )


def test_confirm(clinic):
    appointment = book(clinic, AT)

    appointments.confirm(None, appointment)
    db.session.commit()

    appointment = reload(appointment)
    assert appointment.status == STATUS_CONFIRMED
    assert appointment.confirmed_at is not None
    assert outbox() == []


def test_request_change_offers_free_slots_without_its_own(clinic):
    clinic.opening_hours = {day: [["09:00", "09:30"]] for day in DEFAULT_OPENING_HOURS}
    clinic.slot_capacity = 1
    db.session.commit()
    appointment = book(clinic, datetime(2031, 3, 4, 7, 0, tzinfo=UTC))  # the only 09:00 slot of its day

    slots = appointments.request_change(None, appointment)
    db.session.commit()

    assert reload(appointment).status == STATUS_RESCHEDULE_REQUESTED
    assert len(slots) == 3
    assert all(slot.astimezone(GABORONE).time() == time(9, 0) for slot in slots)


@pytest.mark.parametrize(("attended", "status"), [(True, STATUS_ATTENDED), (False, STATUS_MISSED)])
def test_set_attendance(clinic, attended, status):
    appointment = book(clinic, AT)
    appointments.plan_reminders(appointment, local("2030-03-01", "08:00"))
    now = AT + timedelta(hours=1)  # 10:00 in Gaborone: inside the sending hours

    appointments.set_attendance(None, appointment, attended, now=now)
    db.session.commit()

    appointment = reload(appointment)
    assert (appointment.attended, appointment.status, appointment.next_reminder_at) == (attended, status, None)
    assert appointment.recovery_at == (None if attended else now)  # missed: one recovery SMS due at once


TOO_EARLY_MISSED = "This visit is on {}: it can be marked missed once its time has passed."
TOO_EARLY_ATTENDED = "This visit is on {}: it can be marked attended from that day on (clinic time)."

# (clinic zone, the visit and now in clinic time, attended, the refusal or None: recorded)
ATTENDANCE_TIMES = [
    pytest.param(GABORONE, ("2030-03-05", "09:00"), ("2030-03-05", "08:59"), False,
                 TOO_EARLY_MISSED.format("2030-03-05"), id="missed a minute before its time"),
    pytest.param(GABORONE, ("2030-03-05", "09:00"), ("2030-03-01", "12:00"), False,
                 TOO_EARLY_MISSED.format("2030-03-05"), id="missed days before"),
    pytest.param(GABORONE, ("2030-03-05", "09:00"), ("2030-03-05", "09:00"), False, None, id="missed at its time"),
    pytest.param(GABORONE, ("2030-03-05", "09:00"), ("2030-03-06", "08:00"), False, None, id="missed the next day"),
    pytest.param(GABORONE, ("2030-03-05", "14:00"), ("2030-03-05", "07:30"), True, None,
                 id="attended earlier the same day"),
    pytest.param(GABORONE, ("2030-03-05", "09:00"), ("2030-03-12", "10:00"), True, None, id="attended a week later"),
    pytest.param(GABORONE, ("2030-03-05", "09:00"), ("2030-03-04", "16:00"), True,
                 TOO_EARLY_ATTENDED.format("2030-03-05"), id="attended the day before"),
    # Near midnight the clinic's day decides, not UTC's. The next two are the same instants (visit 22:30 UTC, now
    # 21:30 UTC on 5 March): the next day in Gaborone (UTC+2), the same day in Accra (UTC+0).
    pytest.param(GABORONE, ("2030-03-06", "00:30"), ("2030-03-05", "23:30"), True,
                 TOO_EARLY_ATTENDED.format("2030-03-06"), id="Gaborone: attended before its midnight"),
    pytest.param(ACCRA, ("2030-03-05", "22:30"), ("2030-03-05", "21:30"), True, None,
                 id="Accra: the same instants are one day"),
    # 00:30 UTC on the 5th and 23:30 UTC on the 4th: different days in UTC, the same day in Gaborone.
    pytest.param(GABORONE, ("2030-03-05", "02:30"), ("2030-03-05", "01:30"), True, None,
                 id="Gaborone: attended after its midnight, before UTC's"),
]  # fmt: skip


@pytest.mark.both_backends  # the rule compares the visit's time as the database hands it back (naive on SQLite)
@pytest.mark.parametrize(("zone", "visit", "now", "attended", "refused"), ATTENDANCE_TIMES)
def test_attendance_is_recorded_only_once_it_can_be_known(app, zone, visit, now, attended, refused):
    clinic = make_clinic("Kumasi Clinic", "GH", "Africa/Accra", "en") if zone is ACCRA else make_clinic()
    appointment = reload(book(clinic, local(*visit, zone), planned=local("2030-03-01", "08:00", zone)))
    planned = appointment.next_reminder_at
    at = local(*now, zone)

    if refused:
        with pytest.raises(Conflict) as error:
            appointments.set_attendance(None, appointment, attended, now=at)
    else:
        appointments.set_attendance(None, appointment, attended, now=at)
    db.session.commit()  # whatever the refusal left in the session would be written now

    stored = reload(appointment)
    audited = db.session.scalar(
        select(func.count()).select_from(AuditLog).where(AuditLog.action == "appointment.attendance")
    )
    if refused:
        assert error.value.message == refused
        assert (stored.status, stored.attended, stored.recovery_at) == (STATUS_SCHEDULED, None, None)
        assert stored.next_reminder_at == planned and audited == 0
    else:
        assert stored.status == (STATUS_ATTENDED if attended else STATUS_MISSED) and audited == 1
        assert stored.recovery_at == (None if attended else appointments.next_send_time(clinic, at))
    assert outbox() == []


def test_the_ussd_menus_marking_keeps_the_rule_with_the_clock_it_is_given(clinic):
    visit = book(clinic, AT)  # 09:00 in Gaborone on 5 March

    with pytest.raises(Conflict):
        visits.mark_attended(None, clinic, visit.id, now=local("2030-03-04", "23:59"))
    marked = visits.mark_attended(None, clinic, visit.id, now=local("2030-03-05", "00:00"))
    db.session.commit()

    assert reload(marked).status == STATUS_ATTENDED


def test_attendance_of_a_cancelled_appointment_is_refused(clinic):
    appointment = book(clinic, AT, status=STATUS_CANCELLED)
    with pytest.raises(Conflict):
        appointments.set_attendance(None, appointment, True)


def test_notify_once_per_change_and_never_to_opted_out_patients(clinic):
    appointment = book(clinic, AT)

    appointments.notify(appointment, "appointment_moved", "moved")
    appointments.notify(appointment, "appointment_moved", "moved")  # the same change again: one message
    db.session.commit()
    assert len(outbox()) == 1

    inbox.opt_out(appointment.patient.contact)
    db.session.commit()
    appointments.notify(appointment, "appointment_cancelled_by_clinic", "cancelled")  # no error, nothing written
    db.session.commit()
    assert [m.dedupe_key.split(":")[0] for m in outbox()] == ["moved"]


def test_next_for_phone_is_the_nearest_active_upcoming_appointment_at_any_clinic(clinic):
    other = make_clinic("Kumasi Clinic", "GH", "Africa/Accra", "en")
    now = local("2030-03-01", "08:00")
    book(clinic, now - timedelta(hours=1))  # passed
    book(clinic, AT - timedelta(days=1), status=STATUS_CANCELLED)  # nearer, but cancelled
    later = book(clinic, AT + timedelta(days=2))
    nearest = book(other, AT, status=STATUS_RESCHEDULE_REQUESTED)
    book(clinic, AT - timedelta(days=2), phone="+26772345678")  # someone else's

    assert appointments.next_for_phone(PHONE, now).id == nearest.id
    assert appointments.next_for_phone(PHONE, AT).id == later.id
    assert appointments.next_for_phone(PHONE, AT + timedelta(days=3)) is None
    assert appointments.next_for_phone("+26779999999", now) is None


def test_import_key():
    at = datetime(2030, 3, 5, 9, 0, 45, tzinfo=GABORONE)
    assert appointments.import_key(external_ref="R1", phone=PHONE, at=at) == "ref:R1"
    assert appointments.import_key(external_ref=None, phone=PHONE, at=at) == f"at:{PHONE}|2030-03-05T07:00Z"
    assert appointments.import_key(external_ref="", phone=PHONE, at=at) == f"at:{PHONE}|2030-03-05T07:00Z"


def test_patient_for_keeps_a_language_the_person_chose(app):
    patient = appointments.patient_for(PHONE, language="tn")
    db.session.commit()
    again = appointments.patient_for(PHONE, language="en")
    db.session.commit()

    assert again.id == patient.id and again.language == "tn"
    assert list(db.session.scalars(select(Patient.id))) == [patient.id]


def test_record_for_keeps_each_clinics_name_and_channel_to_itself(clinic):
    other = make_clinic("Kumasi Clinic", "GH", "Africa/Accra", "en")
    patient = appointments.patient_for(PHONE)
    mine = appointments.record_for(clinic, patient, name="Kagiso", channel="whatsapp")
    db.session.commit()

    again = appointments.record_for(clinic, patient, name="Other", channel="sms")  # a name never renames
    theirs = appointments.record_for(other, patient, name="Stranger")
    db.session.commit()

    assert again.id == mine.id and theirs.id != mine.id
    assert (again.name, again.preferred_channel) == ("Kagiso", "sms")
    assert (theirs.name, theirs.preferred_channel) == ("Stranger", "sms")
    assert db.session.scalar(select(func.count()).select_from(PatientRecord)) == 2
