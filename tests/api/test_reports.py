"""``GET /api/v1/reports/attendance``: what became of the appointments, overall and by language, channel and
number of reminders, counted by GROUP BY queries. Runs on PostgreSQL with the ``people`` fixture.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, utcnow
from app.services import appointments
from tests.conftest import bearer

BASE = "/api/v1/reports/attendance"
DAY = datetime(2031, 3, 4, 7, 0, tzinfo=UTC)  # 09:00 in Gaborone


def headers(people, who: str = "staff") -> dict:
    return bearer(people["tokens"][who])


def make(clinic, n: int, *, at: datetime = DAY, status: str = "scheduled", language: str | None = None,
         patient_language: str | None = None, channel: str = "sms", reminders: int = 0, confirmed: bool = False):  # fmt: skip
    """One appointment (patient n) with the given outcome."""
    phone = f"+2677100{n:04d}" if clinic.country == "BW" else f"+23324100{n:04d}"
    appointment = appointments.create(None, clinic, patient_phone=phone, appointment_datetime=at.replace(minute=n % 60),
                                      language=language, channel=channel)  # fmt: skip
    if patient_language:
        appointment.patient.contact.language = patient_language
    appointment.status, appointment.reminders_sent = status, reminders
    appointment.attended = {"attended": True, "missed": False}.get(status)
    appointment.confirmed_at = utcnow() if confirmed else None
    db.session.commit()
    return appointment


@pytest.fixture
def season(people):
    """Tlokweng (default tn): 8 appointments with every outcome; Kumasi (default en): 2."""
    home, other = people["home"], people["other"]
    make(home, 1, status="attended", language="en", reminders=2, confirmed=True)
    make(home, 2, status="attended", reminders=1, confirmed=True)  # tn: the clinic's
    make(home, 3, status="missed", patient_language="en", reminders=1)  # en: the patient's
    make(home, 4, status="missed", reminders=0, channel="whatsapp")
    make(home, 5, status="cancelled", reminders=3, channel="whatsapp", confirmed=True)
    make(home, 6, status="scheduled", reminders=5, language="en")
    make(home, 7, status="confirmed", confirmed=True)
    make(home, 8, status="missed", at=datetime(2031, 3, 5, 21, 30, tzinfo=UTC))  # 23:30 on 5 March, local
    make(other, 1, status="attended", reminders=1)
    make(other, 2, status="missed", at=datetime(2031, 3, 5, 23, 30, tzinfo=UTC))  # 23:30 on 5 March in Accra
    return people


def counts(appointments=0, reminded=0, confirmed=0, attended=0, missed=0, cancelled=0, rate=None,
           recovered=0) -> dict:  # fmt: skip
    return {"appointments": appointments, "reminded": reminded, "confirmed": confirmed, "attended": attended,
            "missed": missed, "cancelled": cancelled, "no_show_rate": rate, "recovered": recovered,
            "recovery_rate": round(recovered / missed, 4) if missed else None}  # fmt: skip


def test_the_clinics_report(client, season):
    response = client.get(BASE, headers=headers(season))

    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    assert (report["clinic_id"], report["from"], report["to"]) == (str(season["home"].id), None, None)
    assert report["overall"] == counts(8, 5, 4, 2, 3, 1, 0.6)
    assert report["by_language"] == {
        "en": counts(3, 3, 1, 1, 1, 0, 0.5),
        "tn": counts(5, 2, 3, 1, 2, 1, 0.6667),
    }
    assert report["by_channel"] == {"sms": counts(6, 4, 3, 2, 2, 0, 0.5), "whatsapp": counts(2, 1, 1, 0, 1, 1, 1.0)}
    assert report["by_reminders"] == {
        "0": counts(3, 0, 1, 0, 2, 0, 1.0),
        "1": counts(2, 2, 1, 1, 1, 0, 0.5),
        "2": counts(1, 1, 1, 1, 0, 0, 0.0),
        "3+": counts(2, 2, 1, 0, 0, 1, None),
    }


@pytest.mark.parametrize(("who", "query", "total"), [
    ("viewer", {}, 8),
    ("other_staff", {}, 2),
    ("admin", {}, 10),
    ("admin", {"clinic_id": "other"}, 2),
    ("staff", {"clinic_id": "home"}, 8),
    # Days are clinic days: 23:30 on 5 March counts for 5 March in Gaborone and in Accra.
    ("staff", {"from": "2031-03-04", "to": "2031-03-04"}, 7),
    ("staff", {"from": "2031-03-05"}, 1),
    ("staff", {"to": "2031-03-03"}, 0),
    ("admin", {"from": "2031-03-05", "to": "2031-03-05"}, 2),
    ("admin", {"from": "2031-03-04", "to": "2031-03-04"}, 8),
])  # fmt: skip
def test_scope_and_period(client, season, who, query, total):
    query = {k: str(season[v].id) if k == "clinic_id" else v for k, v in query.items()}

    response = client.get(BASE, query_string=query, headers=headers(season, who))

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["overall"]["appointments"] == total


def test_an_empty_period_has_zeros_and_no_rate(client, people):
    report = client.get(BASE, query_string={"from": "2031-01-01", "to": "2031-01-31"},
                        headers=headers(people)).get_json()  # fmt: skip

    assert report["overall"] == counts()
    assert set(report["by_language"]) == {"en", "tn"} and set(report["by_channel"]) == {"sms", "whatsapp"}
    assert set(report["by_reminders"]) == {"0", "1", "2", "3+"}


def test_a_report_is_audited(client, season):
    client.get(BASE, headers=headers(season, "viewer"))

    [row] = db.session.scalars(select(AuditLog).where(AuditLog.action == "report.read")).all()
    assert row.details == {"report": "attendance", "clinic_id": str(season["home"].id), "appointments": 8}


def test_another_clinics_report_is_forbidden_and_an_unknown_clinic_422(client, people):
    other = client.get(BASE, query_string={"clinic_id": str(people["other"].id)}, headers=headers(people))
    unknown = client.get(BASE, query_string={"clinic_id": str(uuid.uuid4())}, headers=headers(people, "admin"))

    assert other.status_code == 403
    assert unknown.status_code == 422 and "clinic_id" in unknown.get_json()["error"]["details"]["query"]


@pytest.mark.parametrize(("query", "field"), [
    ({"from": "2031-03-05", "to": "2031-03-04"}, "to"), ({"from": "04/03/2031"}, "from"),
    ({"to": "2031-02-30"}, "to"), ({"from": "0001-01-01"}, "from"), ({"clinic_id": "x"}, "clinic_id"),
    ({"group": "week"}, "group"),
])  # fmt: skip
def test_query_errors_are_422_naming_the_parameter(client, people, query, field):
    response = client.get(BASE, query_string=query, headers=headers(people))

    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]["query"]
