"""``/api/v1/notices`` over HTTP: a notice to tomorrow's patients reaches each once in their language, none to
opted-out numbers, inside the sending hours and the per-number cap; dry runs price without sending; texts over 2
segments are refused; another clinic's staff and viewers cannot send. Read back from the outbox."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.messaging import inbox
from app.models import AuditLog, ClinicNotice, Message, utcnow
from app.services import appointments
from tests.conftest import bearer
from tests.factories import store_appointment

BASE = "/api/v1/notices"
EN = "Thusa: Tlokweng Clinic is closed on Friday for a staff meeting. Come on Monday instead."
TN = "Thusa: Tlokweng Clinic e tla tswalwa ka Labotlhano. Tsweetswee tla ka Mosupologo."


def headers(people, who: str = "staff") -> dict:
    return bearer(people["tokens"][who])


def tomorrow(clinic, hour: int = 10) -> datetime:
    day = (appointments.local_time(clinic, utcnow()) + timedelta(days=1)).date()
    return datetime.combine(day, time(hour, 0), tzinfo=appointments.zone(clinic)).astimezone(UTC)


def notice_rows() -> list[Message]:
    db.session.expire_all()
    return list(db.session.scalars(select(Message).where(Message.dedupe_key.startswith("notice:"))))


@pytest.fixture
def audience(people):
    home = people["home"]
    day = appointments.local_time(home, tomorrow(home)).date().isoformat()
    store_appointment(home, tomorrow(home, 9), phone="+26772000001", patient_language="tn")
    store_appointment(home, tomorrow(home, 11), phone="+26772000001")  # the same patient twice: one message
    store_appointment(home, tomorrow(home, 10), phone="+26772000002", language="en")
    store_appointment(home, tomorrow(home, 12), phone="+26772000003")
    store_appointment(home, tomorrow(home, 12) + timedelta(days=1), phone="+26772000004")  # another day
    store_appointment(people["other"], tomorrow(people["other"]), phone="+233241000005")  # another clinic
    inbox.contact_for("+26772000003").opted_out_at = utcnow()
    db.session.commit()
    return day


def body(day: str, **extra) -> dict:
    return {"audience": {"date": day}, "message_en": EN, "message_tn": TN, **extra}


def test_a_notice_to_tomorrows_patients_reaches_each_once_in_their_language(client, people, audience):
    planned = client.post(BASE, json=body(audience, dry_run=True), headers=headers(people))
    assert planned.status_code == 201 and notice_rows() == []
    sent = client.post(BASE, json=body(audience), headers=headers(people))

    got = sent.get_json()
    assert sent.status_code == 201, got
    assert {k: got[k] for k in ("recipients", "opted_out", "capped", "segment_total")} == {
        "recipients": 2, "opted_out": 1, "capped": 0, "segment_total": 2}  # fmt: skip
    assert got["segments"] == {"en": 1, "tn": 1}
    assert {k: planned.get_json()[k] for k in ("recipients", "segment_total", "id")} == {
        "recipients": 2, "segment_total": 2, "id": None}  # fmt: skip
    rows = {m.address: m for m in notice_rows()}
    assert set(rows) == {"+26772000001", "+26772000002"}
    assert (rows["+26772000001"].text, rows["+26772000001"].language) == (TN, "tn")
    assert rows["+26772000002"].text == EN and rows["+26772000002"].kind == "notice"
    read = client.get(f"{BASE}/{got['id']}", headers=headers(people, "viewer")).get_json()
    assert sum(read["delivery"].values()) == 2 and read["recipients"] == 2
    assert db.session.scalar(select(ClinicNotice)).segment_total == 2
    actions = set(db.session.scalars(select(AuditLog.action).where(AuditLog.action.startswith("notice."))))
    assert actions == {"notice.plan", "notice.send", "notice.read"}


def test_a_scheduled_range_audience_and_the_cap(client, people, audience, app):
    app.config["SMS_CAP_PER_NUMBER_HOUR"] = 0  # every number has had its share this hour
    got = client.post(BASE, json={**body(audience), "audience": {"status": "scheduled"}},
                      headers=headers(people)).get_json()  # fmt: skip
    assert got["capped"] == 3 and got["recipients"] == 0 and notice_rows() == []


@pytest.mark.parametrize(("change", "field"), [
    ({"message_en": "x" * 307}, "message_en"),
    ({"message_tn": "š" * 135}, "message_tn"),  # UCS-2: 67 a segment
    ({"audience": {}}, "audience"),
    ({"audience": {"date": "2031-01-01", "status": "scheduled"}}, "audience"),
    ({"audience": {"status": "scheduled", "from": "2031-02-01", "to": "2031-01-01"}}, "to"),
    ({"message_en": ""}, "message_en"),
])  # fmt: skip
def test_bad_notices_are_422_naming_the_field_and_send_nothing(client, people, audience, change, field):
    response = client.post(BASE, json={**body(audience), **change}, headers=headers(people))
    assert response.status_code == 422 and field in str(response.get_json()["error"]["details"])
    assert notice_rows() == [] and db.session.scalar(select(ClinicNotice)) is None


@pytest.mark.parametrize(("who", "status"), [("viewer", 403), ("pharmacist", 403), ("other_staff", 403)])
def test_attackers_cannot_send_to_the_home_clinics_patients(client, people, audience, who, status):
    response = client.post(BASE, json=body(audience, clinic_id=str(people["home"].id)), headers=headers(people, who))
    assert response.status_code == status and notice_rows() == []


def test_another_clinic_cannot_read_the_notice(client, people, audience):
    got = client.post(BASE, json=body(audience), headers=headers(people)).get_json()
    assert client.get(f"{BASE}/{got['id']}", headers=headers(people, "other_staff")).status_code == 403
