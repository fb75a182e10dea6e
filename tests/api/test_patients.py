"""``/api/v1/patients``: search by phone, one patient's record, and erasure (the right to erasure).

Staff and viewers see patients with an appointment at their clinic, and of them only their clinic's appointments and
messages; admins see all. Runs on PostgreSQL with the ``people`` fixture.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app.extensions import db
from app.messaging.outbox import queue_outbound
from app.models import Appointment, AuditLog, Contact, Conversation, Message, Patient
from tests.conftest import bearer
from tests.factories import booking

PHONE = "+26771234567"
OTHER_PHONE = "+26772000001"
GH_PHONE = "+233241234567"
AT = datetime(2031, 3, 4, 7, 0, tzinfo=UTC)
BASE = "/api/v1/patients"


def headers(people, who: str = "staff") -> dict:
    return bearer(people["tokens"][who])


book = booking(AT)


def audit_rows(action: str) -> list[AuditLog]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.at)))


@pytest.fixture
def records(people):
    """One patient with appointments at both clinics and messages about each; two other patients."""
    home, other = people["home"], people["other"]
    at_home = book(home, PHONE, patient_name="Mpho Kgosi", external_ref="HIS-1")
    at_other = book(other, PHONE, datetime(2031, 3, 5, 9, 0, tzinfo=UTC), external_ref="GH-1")
    neighbour = book(home, OTHER_PHONE)
    ghanaian = book(other, GH_PHONE)
    patient = at_home.patient
    notice_home = queue_outbound(channel="sms", address=PHONE, text="Your appointment at Tlokweng", kind="notice",
                                 clinic_id=home.id, appointment_id=at_home.id)  # fmt: skip
    notice_other = queue_outbound(channel="sms", address=PHONE, text="Your appointment at Kumasi", kind="notice",
                                  clinic_id=other.id, appointment_id=at_other.id)  # fmt: skip
    reply = Message(direction="in", channel="sms", address=PHONE, text="1", status="handled",
                    contact_id=patient.contact_id, appointment_id=at_home.id)  # fmt: skip
    chat = Message(direction="out", channel="whatsapp", address=PHONE, text="Reply 1 to confirm", status="sent",
                   contact_id=patient.contact_id, buttons=[{"id": "1", "title": "Yes"}])  # fmt: skip
    stranger = queue_outbound(channel="sms", address=OTHER_PHONE, text="Not theirs", kind="api", clinic_id=home.id)
    db.session.add_all([reply, chat, Conversation(contact_id=patient.contact_id, channel="sms", flow="appointment",
                                                  state={"offered": ["A", "B"]})])  # fmt: skip
    db.session.commit()
    return {
        "patient": patient.id, "contact": patient.contact_id, "at_home": at_home.id, "at_other": at_other.id,
        "neighbour": neighbour.patient_id, "ghanaian": ghanaian.patient_id, "notice_home": notice_home.id,
        "notice_other": notice_other.id, "reply": reply.id, "chat": chat.id, "stranger": stranger.id,
    }  # fmt: skip


def ids(response) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"]]


# --- GET /patients --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "query", "expected"), [
    ("staff", {"phone": PHONE}, ["patient"]),
    ("staff", {"phone": "71234567"}, ["patient"]),  # national, read in Botswana
    ("staff", {"phone": "+267 71 234 567"}, ["patient"]),
    ("viewer", {"phone": PHONE}, ["patient"]),
    ("other_staff", {"phone": PHONE}, ["patient"]),  # has an appointment at Kumasi too
    ("other_staff", {"phone": "0241234567"}, ["ghanaian"]),  # national, read in Ghana
    ("staff", {"phone": GH_PHONE}, []),  # no appointment at Tlokweng
    ("admin", {"phone": GH_PHONE}, ["ghanaian"]),
    ("admin", {"phone": "0241234567"}, []),  # admins have no country: E.164 only
    ("staff", {"phone": "nonsense"}, []),
    ("staff", {}, ["neighbour", "patient"]),  # newest first
    ("admin", {}, ["ghanaian", "neighbour", "patient"]),
])  # fmt: skip
def test_search(client, people, records, who, query, expected):
    response = client.get(BASE, query_string=query, headers=headers(people, who))

    assert ids(response) == [str(records[name]) for name in expected]


def test_a_search_is_an_audited_read_without_the_number(client, people, records):
    client.get(BASE, query_string={"phone": PHONE}, headers=headers(people, "viewer"))

    [row] = audit_rows("patient.read")
    assert row.details == {"view": "search", "filters": ["phone"], "count": 1}
    assert row.actor_id == people["users"]["viewer"].id


def test_a_search_answer_shows_the_patient(client, people, records):
    [item] = client.get(BASE, query_string={"phone": PHONE}, headers=headers(people)).get_json()["items"]

    assert set(item) == {"id", "phone", "name", "language", "preferred_channel", "opted_out_at", "erased_at",
                         "created_at"}  # fmt: skip
    assert (item["phone"], item["name"], item["preferred_channel"], item["erased_at"]) == (PHONE, "Mpho Kgosi",
                                                                                           "sms", None)  # fmt: skip


@pytest.mark.parametrize(("query", "field"), [({"phone": ""}, "phone"), ({"phone": "+2\x00"}, "phone"),
                                              ({"name": "Mpho"}, "name"), ({"page": 0}, "page")])  # fmt: skip
def test_search_errors_are_422_naming_the_parameter(client, people, query, field):
    response = client.get(BASE, query_string=query, headers=headers(people))

    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]["query"]


# --- GET /patients/{id} ---------------------------------------------------------------------------------------------


def detail(client, people, patient_id, who: str = "staff"):
    return client.get(f"{BASE}/{patient_id}", headers=headers(people, who))


@pytest.mark.parametrize(("who", "appointments_seen", "messages_seen"), [
    ("staff", ["at_home"], ["reply", "notice_home"]),
    ("viewer", ["at_home"], ["reply", "notice_home"]),
    ("other_staff", ["at_other"], ["notice_other"]),
    ("admin", ["at_other", "at_home"], ["chat", "reply", "notice_other", "notice_home"]),
])  # fmt: skip
def test_a_patients_record_shows_only_the_callers_clinic(client, people, records, who, appointments_seen,
                                                         messages_seen):  # fmt: skip
    response = detail(client, people, records["patient"], who)

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["id"] == str(records["patient"]) and body["phone"] == PHONE
    assert [a["id"] for a in body["appointments"]] == [str(records[n]) for n in appointments_seen]
    assert sorted(m["id"] for m in body["messages"]) == sorted(str(records[n]) for n in messages_seen)
    [row] = audit_rows("patient.read")
    assert row.entity_id == str(records["patient"])
    assert row.details == {"view": "one", "appointments": len(appointments_seen), "messages": len(messages_seen)}


def test_unknown_patient_is_404_and_another_clinics_403(client, people, records):
    assert detail(client, people, uuid.uuid4()).status_code == 404
    assert detail(client, people, records["ghanaian"]).status_code == 403
    assert detail(client, people, records["neighbour"], "other_staff").status_code == 403
    assert audit_rows("patient.read") == []


# --- DELETE /patients/{id} ------------------------------------------------------------------------------------------


def test_erasure_removes_the_person_and_keeps_anonymous_counts(client, people, records):
    response = client.delete(f"{BASE}/{records['patient']}", headers=headers(people, "admin"))

    assert response.status_code == 204, response.get_data(as_text=True)
    db.session.expire_all()
    erased = f"erased:{records['patient']}"
    patient = db.session.get(Patient, records["patient"])
    assert (patient.phone, patient.name) == (erased, None) and patient.erased_at is not None
    contact = db.session.get(Contact, records["contact"])
    assert (contact.address, contact.name) == (erased, None)
    conversation = db.session.scalar(select(Conversation).where(Conversation.contact_id == contact.id))
    assert (conversation.flow, conversation.state) == (None, {})
    for name in ("notice_home", "notice_other", "reply", "chat"):
        message = db.session.get(Message, records[name])
        assert (message.text, message.address, message.buttons) == (None, erased, []), name
    # Notices still waiting to go out will never reach anyone now.
    assert db.session.get(Message, records["notice_home"]).status == "failed"
    assert db.session.get(Message, records["chat"]).status == "sent"
    stranger = db.session.get(Message, records["stranger"])
    assert (stranger.text, stranger.address) == ("Not theirs", OTHER_PHONE)
    for name in ("at_home", "at_other"):
        appointment = db.session.get(Appointment, records[name])
        assert appointment.external_ref is None and appointment.import_key == f"erased:{appointment.id}"
        kept = (appointment.status, appointment.appointment_datetime.year, appointment.next_reminder_at)
        assert kept == ("scheduled", 2031, None)
    assert db.session.get(Appointment, records["at_home"]).clinic_id == people["home"].id
    [row] = audit_rows("patient.erase")
    assert row.entity_id == str(records["patient"]) and PHONE not in str(row.details)
    assert row.details == {"appointments": 2, "messages": 4, "unsent": 2}


def test_after_erasure_the_counts_remain_and_the_number_is_gone(client, people, records):
    client.delete(f"{BASE}/{records['patient']}", headers=headers(people, "admin"))

    assert ids(client.get(BASE, query_string={"phone": PHONE}, headers=headers(people, "admin"))) == []
    report = client.get("/api/v1/reports/attendance", headers=headers(people)).get_json()
    assert report["overall"]["appointments"] == 2  # Tlokweng: the erased patient's and the neighbour's
    body = detail(client, people, records["patient"]).get_json()
    assert (body["phone"], body["name"]) == (f"erased:{records['patient']}", None)
    assert [m["text"] for m in body["messages"]] == [None, None]


def test_booking_the_same_appointment_again_after_erasure_makes_a_new_patient(client, people, records):
    client.delete(f"{BASE}/{records['patient']}", headers=headers(people, "admin"))

    again = client.post("/api/v1/appointments", json={"patient_phone": PHONE, "external_ref": "HIS-1",
                                                      "appointment_datetime": AT.isoformat()},
                        headers=headers(people))  # fmt: skip

    assert again.status_code == 201, again.get_json()
    assert again.get_json()["patient_id"] != str(records["patient"])


def test_erasing_twice_is_a_204_that_changes_nothing(client, people, records):
    first = client.delete(f"{BASE}/{records['patient']}", headers=headers(people, "admin"))
    db.session.expire_all()
    erased_at = db.session.get(Patient, records["patient"]).erased_at

    second = client.delete(f"{BASE}/{records['patient']}", headers=headers(people, "admin"))

    assert (first.status_code, second.status_code) == (204, 204)
    db.session.expire_all()
    assert db.session.get(Patient, records["patient"]).erased_at == erased_at
    assert [r.details for r in audit_rows("patient.erase")][1] == {"already_erased": True}


@pytest.mark.parametrize("who", ["staff", "viewer", "other_staff", "pharmacist"])
def test_only_admins_erase(client, people, records, who):
    response = client.delete(f"{BASE}/{records['patient']}", headers=headers(people, who))

    assert response.status_code == 403
    db.session.expire_all()
    assert db.session.get(Patient, records["patient"]).phone == PHONE


def test_erasing_an_unknown_patient_is_404(client, people):
    assert client.delete(f"{BASE}/{uuid.uuid4()}", headers=headers(people, "admin")).status_code == 404
