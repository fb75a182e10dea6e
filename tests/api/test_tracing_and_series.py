"""Tracing patients who missed a visit (``GET /appointments/tracing``, ``POST /appointments/{id}/tracing``) and
recurring visits (``repeat`` on ``POST /appointments``, the next visit booked when one is attended or missed,
cancelling one or the rest), over HTTP with the ``people`` fixture; attackers from another clinic and a viewer
writing are refused. Rows are read back from the database.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Appointment, AuditLog, TracingOutcome, utcnow
from app.models.appointment import STATUS_ATTENDED, STATUS_CANCELLED, STATUS_MISSED, STATUS_SCHEDULED
from app.security import Actor
from app.services import appointments, recovery, series, tracing
from app.services.upkeep import mark_missed
from tests.conftest import bearer
from tests.factories import past_visit, store_appointment

BASE = "/api/v1/appointments"
PHONE = "+26771234567"


def headers(people, who: str = "staff") -> dict:
    return bearer(people["tokens"][who])


def missed(clinic, *, days_ago: int = 1, phone: str = PHONE) -> Appointment:
    return past_visit(clinic, phone, days_ago=days_ago, status=STATUS_MISSED)


def local_iso(clinic, days: int, hour: int = 9) -> str:
    day = (appointments.local_time(clinic, utcnow()) + timedelta(days=days)).date()
    return datetime.combine(day, time(hour, 0), tzinfo=appointments.zone(clinic)).isoformat()


# --- tracing ------------------------------------------------------------------------------------------------------


def test_the_tracing_list_shows_unrebooked_missed_visits_with_attempts_and_overdue(client, people):
    home = people["home"]
    fresh = missed(home, days_ago=2)
    old = missed(home, days_ago=20, phone="+26772000009")
    rebooked = missed(home, days_ago=3, phone="+26772000008")
    recovery.rebook(None, rebooked, datetime.fromisoformat(local_iso(home, 5)).astimezone(UTC))
    missed(people["other"], phone="+233241000099")  # another clinic's: never listed here
    fresh.recovery_at = utcnow()  # its recovery SMS is written: one contact attempt
    db.session.commit()
    recovery.queue_due_recovery(utcnow() + timedelta(days=1))

    body = client.get(f"{BASE}/tracing", headers=headers(people, "viewer")).get_json()

    listed = {item["appointment"]["id"]: item for item in body["items"]}
    assert set(listed) == {str(fresh.id), str(old.id)} and body["total"] == 2
    assert [item["appointment"]["id"] for item in body["items"]] == [str(old.id), str(fresh.id)]  # oldest first
    assert listed[str(old.id)]["overdue"] is True and listed[str(old.id)]["days_since"] == 20
    assert listed[str(fresh.id)] | {"appointment": None} == {
        "appointment": None, "days_since": 2, "overdue": False, "contact_attempts": 1, "last_outcome": None,
        "last_outcome_at": None, "last_note": None}  # fmt: skip
    overdue_only = client.get(f"{BASE}/tracing", query_string={"overdue": "true"}, headers=headers(people)).get_json()
    assert [item["appointment"]["id"] for item in overdue_only["items"]] == [str(old.id)]
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "appointment.tracing.read")) is not None


@pytest.mark.parametrize(("outcome", "stays"), [("unreachable", True), ("reached_declined", False),
                                                ("reached_rebooked", False), ("transferred_out", False),
                                                ("died", False)])  # fmt: skip
def test_an_outcome_is_recorded_audited_and_closes_the_visit_unless_unreachable(client, people, outcome, stays):
    visit = missed(people["home"])

    response = client.post(f"{BASE}/{visit.id}/tracing", json={"outcome": outcome, "note": "Called twice"},
                           headers=headers(people))  # fmt: skip

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["last_outcome"] == outcome and body["last_note"] == "Called twice" and body["contact_attempts"] == 1
    listed = client.get(f"{BASE}/tracing", headers=headers(people)).get_json()["items"]
    assert bool(listed) is stays
    if stays:
        assert listed[0]["last_outcome"] == outcome
    row = db.session.scalar(select(AuditLog).where(AuditLog.action == "appointment.tracing"))
    assert row.entity_id == str(visit.id) and row.details == {"outcome": outcome}


@pytest.mark.parametrize(("who", "status"), [("other_staff", 403), ("viewer", 403), ("pharmacist", 403)])
def test_attackers_cannot_record_outcomes(client, people, who, status):
    visit = missed(people["home"])
    response = client.post(f"{BASE}/{visit.id}/tracing", json={"outcome": "died"}, headers=headers(people, who))
    assert response.status_code == status
    assert db.session.scalar(select(TracingOutcome)) is None


def test_another_clinics_staff_sees_none_of_the_list_and_cannot_name_the_clinic(client, people):
    missed(people["home"])
    mine = client.get(f"{BASE}/tracing", headers=headers(people, "other_staff")).get_json()
    named = client.get(f"{BASE}/tracing", query_string={"clinic_id": str(people["home"].id)},
                       headers=headers(people, "other_staff"))  # fmt: skip
    assert mine["items"] == [] and named.status_code == 403


@pytest.mark.parametrize(("body", "field"), [({"outcome": "lost"}, "outcome"), ({}, "outcome"),
                                             ({"outcome": "died", "note": "x" * 501}, "note")])  # fmt: skip
def test_bad_outcomes_are_422_naming_the_field(client, people, body, field):
    visit = missed(people["home"])
    response = client.post(f"{BASE}/{visit.id}/tracing", json=body, headers=headers(people))
    assert response.status_code == 422 and field in str(response.get_json()["error"]["details"])


def test_only_a_missed_visit_is_traced(client, people):
    visit = store_appointment(people["home"], utcnow() + timedelta(days=3))
    response = client.post(f"{BASE}/{visit.id}/tracing", json={"outcome": "died"}, headers=headers(people))
    unknown = client.post(f"{BASE}/{uuid.uuid4()}/tracing", json={"outcome": "died"}, headers=headers(people))
    assert response.status_code == 409 and unknown.status_code == 404


@pytest.mark.parametrize("target", ["unknown", "other_clinic", "not_missed", "other_patient"])
def test_rebooks_names_a_missed_visit_of_the_patient_else_422_and_nothing_is_booked(client, people, target):
    home = people["home"]
    rebooks = {"unknown": lambda: uuid.uuid4(),
               "other_clinic": lambda: missed(people["other"], phone="+233241000098").id,
               "not_missed": lambda: store_appointment(home, utcnow() + timedelta(days=3), phone=PHONE).id,
               "other_patient": lambda: missed(home, phone="+26772000007").id,
               }[target]()  # fmt: skip
    before = len(db.session.scalars(select(Appointment.id)).all())

    response = client.post(BASE, json={"patient_phone": PHONE, "appointment_datetime": local_iso(home, 2),
                                       "rebooks": str(rebooks)}, headers=headers(people))  # fmt: skip

    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["details"] == {
        "json": {"rebooks": ["Not a missed visit of this patient at this clinic."]}}  # fmt: skip
    assert len(db.session.scalars(select(Appointment.id)).all()) == before


def test_a_booking_that_rebooks_a_missed_visit_takes_it_off_the_list(client, people):
    visit = missed(people["home"])

    response = client.post(BASE, json={"patient_phone": PHONE, "appointment_datetime": local_iso(people["home"], 2),
                                       "rebooks": str(visit.id)}, headers=headers(people))  # fmt: skip

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["rebooked_from_id"] == str(visit.id)
    assert client.get(f"{BASE}/tracing", headers=headers(people)).get_json()["items"] == []


# --- recurring visits ---------------------------------------------------------------------------------------------


def _series_visits(series_id) -> list[Appointment]:
    db.session.expire_all()
    return list(db.session.scalars(select(Appointment).where(Appointment.series_id == uuid.UUID(str(series_id)))
                                   .order_by(Appointment.series_number)))  # fmt: skip


def test_a_28_day_series_books_its_next_visit_when_one_is_attended_at_the_same_local_time(client, people):
    first = past_visit(people["home"])  # yesterday at 10:00: attendance is recorded once the visit took place
    started = series.start(first, 28, 3)
    db.session.commit()

    response = client.put(f"{BASE}/{first.id}/attendance", json={"attended": True}, headers=headers(people))
    visits = _series_visits(started.id)

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["series"]["every_days"] == 28 and body["series"]["count"] == 3 and body["series_number"] == 1
    assert [v.status for v in visits] == [STATUS_ATTENDED, STATUS_SCHEDULED]
    assert visits[1].appointment_datetime - visits[0].appointment_datetime == timedelta(days=28)
    assert visits[1].series_number == 2
    shown = client.get(f"{BASE}/{visits[1].id}", headers=headers(people, "viewer")).get_json()
    assert shown["series"]["booked"] == 2

    # The next two, each recorded at its own time: the second missed, so the third (the last) is booked.
    appointments.set_attendance(None, visits[1], False, now=visits[1].appointment_datetime + timedelta(hours=1))
    db.session.commit()
    third = _series_visits(started.id)[2]
    appointments.set_attendance(None, third, True, now=third.appointment_datetime)
    db.session.commit()
    assert len(_series_visits(started.id)) == 3  # count reached: nothing more


def test_the_next_visit_moves_to_the_next_day_whose_slot_has_room(client, people):
    home = people["home"]
    first = past_visit(home)
    started = series.start(first, 7, None)
    db.session.commit()
    due = first.appointment_datetime + timedelta(days=7)
    for n in range(home.slot_capacity):
        appointments.create(None, home, patient_phone=f"+2677900{n:04d}", appointment_datetime=due)
    db.session.commit()

    response = client.put(f"{BASE}/{first.id}/attendance", json={"attended": True}, headers=headers(people))

    assert response.status_code == 200, response.get_json()
    nxt = _series_visits(started.id)[1]
    assert nxt.appointment_datetime == due + timedelta(days=1) and response.get_json()["series"]["count"] is None


def test_the_nightly_job_books_the_next_visit_of_a_missed_series_visit(app, people):
    home = people["home"]
    visit = store_appointment(home, utcnow() - timedelta(days=1))
    started = series.start(visit, 28, None)
    db.session.commit()
    mark_missed(utcnow())
    visits = _series_visits(started.id)
    assert [v.status for v in visits] == [STATUS_MISSED, STATUS_SCHEDULED]


@pytest.mark.parametrize("scope", ["one", "rest"])
def test_cancelling_one_visit_books_the_next_and_cancelling_the_rest_ends_the_series(client, people, scope):
    home = people["home"]
    first = client.post(BASE, json={"patient_phone": PHONE, "appointment_datetime": local_iso(home, 3, 11),
                                    "repeat": {"every_days": 28}}, headers=headers(people)).get_json()  # fmt: skip

    response = client.delete(f"{BASE}/{first['id']}", query_string={"series": scope}, headers=headers(people))

    assert response.status_code == 200
    visits = _series_visits(first["series"]["id"])
    if scope == "one":
        assert [v.status for v in visits] == [STATUS_CANCELLED, STATUS_SCHEDULED]
    else:
        assert [v.status for v in visits] == [STATUS_CANCELLED]
        assert response.get_json()["series"]["ended_at"] is not None


@pytest.mark.parametrize("repeat", [{"every_days": 0}, {"every_days": 28, "count": 1}, {"count": 3},
                                    {"every_days": "x"}, {"every_days": 28, "extra": 1}])  # fmt: skip
def test_a_bad_repeat_is_422_and_books_nothing(client, people, repeat):
    response = client.post(BASE, json={"patient_phone": PHONE, "appointment_datetime": local_iso(people["home"], 2),
                                       "repeat": repeat}, headers=headers(people))  # fmt: skip
    assert response.status_code == 422 and "repeat" in str(response.get_json()["error"]["details"])
    assert db.session.scalar(select(Appointment)) is None


@pytest.mark.parametrize(("days_ago", "overdue"), [(14, False), (15, True)])
def test_overdue_in_the_filter_and_the_flag_agree_at_the_edge(client, people, days_ago, overdue):
    missed(people["home"], days_ago=days_ago)
    listed = {
        flag: client.get(f"{BASE}/tracing", query_string={"overdue": flag}, headers=headers(people)).get_json()
        for flag in ("true", "false")
    }
    shown = listed["true" if overdue else "false"]["items"]
    assert [item["overdue"] for item in shown] == [overdue]
    assert listed["false" if overdue else "true"]["items"] == []


def test_an_admins_overdue_filter_counts_each_clinics_own_days(people):
    # 23:00 UTC on 5 March: already the 6th in Gaborone (UTC+2), still the 5th in Accra (UTC+0). Each clinic's two
    # missed visits are RECOVERY_DAYS + 1 (overdue) and RECOVERY_DAYS (not yet) of its own days old.
    now = datetime(2030, 3, 5, 23, 0, tzinfo=UTC)
    expected = {True: set(), False: set()}
    for n, clinic in enumerate((people["home"], people["other"])):
        today = appointments.local_time(clinic, now).date()
        for days, overdue in ((recovery.RECOVERY_DAYS + 1, True), (recovery.RECOVERY_DAYS, False)):
            at = datetime.combine(today - timedelta(days=days), time(10, 0), tzinfo=appointments.zone(clinic))
            visit = store_appointment(clinic, at.astimezone(UTC), phone=f"+2677123450{n}{int(overdue)}",
                                      status=STATUS_MISSED)  # fmt: skip
            expected[overdue].add(visit.id)
    admin = Actor(user_id=people["users"]["admin"].id, role="admin", clinic_id=None, remote_addr=None)

    for flag in (True, False):
        listed = tracing.tracing_list(admin, page=1, per_page=50, overdue=flag, now=now)["items"]
        assert {entry.appointment.id for entry in listed} == expected[flag]
        assert {entry.overdue for entry in listed} == {flag}  # the filter and each entry's flag agree
