"""Clinics: admin CRUD, staff and viewers read their own."""

from __future__ import annotations

import uuid
from datetime import time, timedelta

import pytest

from app.extensions import db
from app.models import AuditLog, Clinic, utcnow
from tests.conftest import bearer, make_clinic


def test_admin_creates_updates_and_deletes_a_clinic(client, people):
    admin = bearer(people["tokens"]["admin"])
    body = {"name": "Tlokweng Clinic 2", "country": "BW", "timezone": "Africa/Gaborone", "default_language": "tn"}
    created = client.post("/api/v1/clinics", json=body, headers=admin)
    assert created.status_code == 201
    clinic_id = created.get_json()["id"]
    patched = client.patch(f"/api/v1/clinics/{clinic_id}", json={"name": "Tlokweng Health Post"}, headers=admin)
    assert patched.status_code == 200 and patched.get_json()["timezone"] == "Africa/Gaborone"
    assert client.delete(f"/api/v1/clinics/{clinic_id}", headers=admin).status_code == 204
    assert db.session.get(Clinic, uuid.UUID(clinic_id)) is None
    actions = {row.action for row in db.session.query(AuditLog).filter_by(entity_id=clinic_id)}
    assert actions == {"clinic.create", "clinic.update", "clinic.delete"}


def test_a_clinic_with_accounts_cannot_be_deleted(client, people):
    response = client.delete(f"/api/v1/clinics/{people['home'].id}", headers=bearer(people["tokens"]["admin"]))
    assert response.status_code == 409
    assert "account" in response.get_json()["error"]["message"]


def test_a_clinic_with_appointments_cannot_be_deleted(client, people):
    clinic = make_clinic("Mogoditshane Clinic")
    _future_appointment(clinic)
    response = client.delete(f"/api/v1/clinics/{clinic.id}", headers=bearer(people["tokens"]["admin"]))
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "conflict"
    db.session.expire_all()
    assert db.session.get(Clinic, clinic.id) is not None


def test_staff_and_viewers_see_only_their_own_clinic(client, people):
    for who in ("staff", "viewer"):
        body = client.get("/api/v1/clinics", headers=bearer(people["tokens"][who])).get_json()
        assert [c["id"] for c in body["items"]] == [str(people["home"].id)] and body["total"] == 1
    other = client.get(f"/api/v1/clinics/{people['other'].id}", headers=bearer(people["tokens"]["staff"]))
    assert other.status_code == 403


def test_country_filter(client, people):
    body = client.get("/api/v1/clinics?country=GH", headers=bearer(people["tokens"]["admin"])).get_json()
    assert [c["name"] for c in body["items"]] == ["Kumasi Clinic"]


# --- reminder, sending-hours and booking settings -----------------------------------------------------------------

NEW_CLINIC = {"name": "Mochudi Clinic", "country": "BW", "timezone": "Africa/Gaborone", "default_language": "tn"}
SETTINGS = {
    "short_name": "Mochudi",
    "reminder_offsets_minutes": [120, 2880],
    "send_window_start": "08:00",
    "send_window_end": "18:30",
    "opening_hours": {"sat": [["08:00", "12:00"]], "mon": [["13:30", "16:30"], ["07:30", "12:30"]], "sun": []},
    "slot_minutes": 15,
    "slot_capacity": 2,
    "booking_confirmation": True,
}


def test_a_new_clinic_shows_the_default_settings(client, people):
    body = client.post("/api/v1/clinics", json=NEW_CLINIC, headers=bearer(people["tokens"]["admin"])).get_json()

    assert body["short_name"] is None
    assert body["reminder_offsets_minutes"] == [4320, 1440]
    assert (body["send_window_start"], body["send_window_end"]) == ("07:00", "20:00")
    assert body["opening_hours"] == {day: [["07:30", "16:30"]] for day in ("mon", "tue", "wed", "thu", "fri")}
    assert (body["slot_minutes"], body["slot_capacity"], body["booking_confirmation"]) == (30, 4, False)


def test_settings_are_set_on_create_and_on_change(client, people):
    admin = bearer(people["tokens"]["admin"])

    created = client.post("/api/v1/clinics", json={**NEW_CLINIC, **SETTINGS}, headers=admin)

    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["reminder_offsets_minutes"] == [2880, 120]  # stored latest first
    assert body["opening_hours"] == {"mon": [["07:30", "12:30"], ["13:30", "16:30"]], "sat": [["08:00", "12:00"]],
                                     "sun": []}  # fmt: skip
    assert {k: body[k] for k in ("short_name", "send_window_start", "send_window_end", "slot_minutes",
                                 "slot_capacity", "booking_confirmation")} == {
        k: SETTINGS[k] for k in ("short_name", "send_window_start", "send_window_end", "slot_minutes",
                                 "slot_capacity", "booking_confirmation")}  # fmt: skip
    clinic = db.session.get(Clinic, uuid.UUID(body["id"]))
    assert clinic.sms_name == "Mochudi"
    changed = client.patch(f"/api/v1/clinics/{body['id']}", headers=admin,
                           json={"short_name": None, "reminder_offsets_minutes": [], "send_window_start": "06:00",
                                 "send_window_end": "21:00", "booking_confirmation": False})  # fmt: skip
    assert changed.status_code == 200, changed.get_json()
    after = changed.get_json()
    assert (after["short_name"], after["reminder_offsets_minutes"], after["send_window_start"]) == (None, [], "06:00")
    assert after["slot_minutes"] == 15  # untouched
    assert client.get(f"/api/v1/clinics/{body['id']}", headers=admin).get_json() == after


@pytest.mark.parametrize(("change", "field"), [
    ({"short_name": "Tšhabong"}, "short_name"),  # š is not GSM-7
    ({"short_name": "Clinic 🙂"}, "short_name"),
    ({"short_name": "x" * 31}, "short_name"),
    ({"short_name": "  "}, "short_name"),
    ({"reminder_offsets_minutes": [1440, 1440]}, "reminder_offsets_minutes"),
    ({"reminder_offsets_minutes": [0]}, "reminder_offsets_minutes"),
    ({"reminder_offsets_minutes": [43201]}, "reminder_offsets_minutes"),
    ({"reminder_offsets_minutes": [1, 2, 3, 4, 5, 6]}, "reminder_offsets_minutes"),
    ({"reminder_offsets_minutes": [90.5]}, "reminder_offsets_minutes"),
    ({"reminder_offsets_minutes": ["60"]}, "reminder_offsets_minutes"),
    ({"reminder_offsets_minutes": 60}, "reminder_offsets_minutes"),
    ({"send_window_start": "7:00", "send_window_end": "20:00"}, "send_window_start"),
    ({"send_window_start": "07:00", "send_window_end": "24:00"}, "send_window_end"),
    ({"send_window_start": "20:00", "send_window_end": "07:00"}, "send_window_end"),
    ({"send_window_start": "08:00", "send_window_end": "08:00"}, "send_window_end"),
    ({"opening_hours": {"monday": [["08:00", "12:00"]]}}, "opening_hours"),
    ({"opening_hours": {"mon": [["8:00", "12:00"]]}}, "opening_hours"),
    ({"opening_hours": {"mon": [["12:00", "08:00"]]}}, "opening_hours"),
    ({"opening_hours": {"mon": [["08:00", "12:00"], ["11:00", "14:00"]]}}, "opening_hours"),
    ({"opening_hours": {"mon": [["08:00", "12:00", "13:00"]]}}, "opening_hours"),
    ({"opening_hours": {"mon": "08:00-12:00"}}, "opening_hours"),
    ({"opening_hours": {"mon": [["07:00", "08:00"]] * 7}}, "opening_hours"),
    ({"slot_minutes": 4}, "slot_minutes"),
    ({"slot_minutes": 241}, "slot_minutes"),
    ({"slot_capacity": 0}, "slot_capacity"),
    ({"slot_capacity": 501}, "slot_capacity"),
    ({"booking_confirmation": "sometimes"}, "booking_confirmation"),
    ({"name": "Clinic\x00"}, "name"),
    ({"alert_recipient_ids": []}, "alert_recipient_ids"),  # low-stock alert recipients
])  # fmt: skip
def test_bad_settings_are_422_naming_the_field_on_create_and_on_change(client, people, change, field):
    admin = bearer(people["tokens"]["admin"])

    created = client.post("/api/v1/clinics", json={**NEW_CLINIC, **change}, headers=admin)
    changed = client.patch(f"/api/v1/clinics/{people['home'].id}", json=change, headers=admin)

    for response in (created, changed):
        assert response.status_code == 422, response.get_json()
        assert field in response.get_json()["error"]["details"]["json"], response.get_json()
    if field == "opening_hours" and "monday" not in str(change):
        assert "mon" in changed.get_json()["error"]["details"]["json"]["opening_hours"]
    db.session.expire_all()
    assert db.session.query(Clinic).count() == 2
    assert db.session.get(Clinic, people["home"].id).reminder_offsets_minutes == [4320, 1440]


def test_the_sending_hours_change_together(client, people):
    admin = bearer(people["tokens"]["admin"])

    created = client.post("/api/v1/clinics", json={**NEW_CLINIC, "send_window_start": "06:00"}, headers=admin)
    alone = client.patch(f"/api/v1/clinics/{people['home'].id}", json={"send_window_end": "21:00"}, headers=admin)
    late = client.post("/api/v1/clinics", json={**NEW_CLINIC, "send_window_start": "21:00"}, headers=admin)

    assert created.status_code == 201 and created.get_json()["send_window_end"] == "20:00"
    assert alone.status_code == 422 and "send_window_start" in alone.get_json()["error"]["details"]["json"]
    assert late.status_code == 422 and "send_window_end" in late.get_json()["error"]["details"]["json"]


def test_opening_hours_messages_say_what_is_wrong(client, people):
    response = client.patch(f"/api/v1/clinics/{people['home'].id}", headers=bearer(people["tokens"]["admin"]),
                            json={"opening_hours": {"tue": [["08:00", "12:00"], ["11:00", "14:00"]],
                                                    "wed": [["12:00", "08:00"]]}})  # fmt: skip

    errors = response.get_json()["error"]["details"]["json"]["opening_hours"]
    assert errors == {"tue": ["08:00-12:00 and 11:00-14:00 overlap."],
                      "wed": ["12:00-08:00: the opening time must be before the closing time."]}  # fmt: skip


def _future_appointment(clinic, days: int = 10):
    from app.services import appointments

    # 10:00 UTC is midday in the clinic: the reminders fall inside the default sending hours whenever the suite runs.
    at = (utcnow() + timedelta(days=days)).replace(hour=10, minute=0, second=0, microsecond=0)
    appointment = appointments.create(None, clinic, patient_phone="+26771234567", appointment_datetime=at)
    db.session.commit()
    return appointment


def test_replan_clinic_plans_future_appointments_for_new_offsets(app, people):
    from app.services import appointments

    clinic = people["home"]
    appointment = _future_appointment(clinic)
    cancelled = appointments.create(None, clinic, patient_phone="+26772000001",
                                    appointment_datetime=appointment.appointment_datetime)  # fmt: skip
    appointments.cancel(None, cancelled)
    clinic.reminder_offsets_minutes, clinic.send_window_start = [60], time(0, 0)
    clinic.send_window_end = time(23, 59)
    db.session.commit()

    assert appointments.replan_clinic(clinic) == 1
    db.session.commit()

    db.session.expire_all()
    moved = db.session.get(type(appointment), appointment.id)
    assert (moved.next_reminder_offset, moved.next_reminder_at) == (60, moved.appointment_datetime - timedelta(hours=1))
    assert db.session.get(type(appointment), cancelled.id).next_reminder_at is None


def test_changing_the_offsets_through_the_api_replans_the_appointments(client, people):
    appointment = _future_appointment(people["home"])

    response = client.patch(f"/api/v1/clinics/{people['home'].id}", json={"reminder_offsets_minutes": [60]},
                            headers=bearer(people["tokens"]["admin"]))  # fmt: skip

    assert response.status_code == 200
    db.session.expire_all()
    moved = db.session.get(type(appointment), appointment.id)
    assert moved.next_reminder_offset == 60
