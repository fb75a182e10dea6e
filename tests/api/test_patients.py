"""``/api/v1/patients``: search by phone, one patient's record, a clinic's own record, and erasure (the right to
erasure).

Staff and viewers see patients with a current (not cancelled) appointment at their clinic, and of them only their
clinic's record (name, channel, notes), appointments and messages; admins see all, with every clinic's record. The
attacks: staff of another clinic (Kumasi, ``other_staff``) booking a number Tlokweng knows, one at a time or a
bulk of them, then reading, renaming, re-routing and keeping access after cancelling. Runs on PostgreSQL with the
``people`` fixture.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app.extensions import db
from app.messaging.outbox import queue_outbound
from app.models import (
    Appointment,
    AuditLog,
    Clinic,
    Contact,
    Conversation,
    Message,
    Patient,
    PatientRecord,
    TracingOutcome,
)
from app.services import appointments
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

    assert set(item) == {"id", "phone", "name", "language", "preferred_channel", "notes", "opted_out_at", "erased_at",
                         "created_at", "records"}  # fmt: skip
    assert (item["phone"], item["name"], item["preferred_channel"], item["notes"], item["erased_at"]) == (
        PHONE, "Mpho Kgosi", "sms", None, None)  # fmt: skip
    [record] = item["records"]
    assert set(record) == {"clinic_id", "name", "preferred_channel", "notes", "created_at", "updated_at"}
    assert (record["clinic_id"], record["name"]) == (str(people["home"].id), "Mpho Kgosi")


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


# --- another clinic books a number this clinic knows -------------------------------------------------------------

A_NAME, A_NOTES = "Mpho Kgosi", "Allergic to penicillin"
KUMASI_AT = "2031-03-05T09:00:00+00:00"


@pytest.fixture
def known(people):
    """Tlokweng's patient: named, reached by WhatsApp, with notes; one appointment and a notice about it."""
    appointment = book(people["home"], PHONE, patient_name=A_NAME, channel="whatsapp", external_ref="HIS-1")
    appointment.record.notes = A_NOTES
    queue_outbound(channel="whatsapp", address=PHONE, text="Your appointment at Tlokweng", kind="notice",
                   clinic_id=people["home"].id, appointment_id=appointment.id)  # fmt: skip
    db.session.commit()
    return appointment


def kumasi_books(client, people, phone: str = PHONE, **fields) -> dict:
    """Staff of the other clinic book the number through the API (E.164: any country's number can be booked)."""
    response = client.post("/api/v1/appointments", json={"patient_phone": phone, "appointment_datetime": KUMASI_AT,
                                                         **fields}, headers=headers(people, "other_staff"))  # fmt: skip
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def records_of(patient_id) -> dict[str, tuple]:
    """Each clinic's record of the patient, by clinic name: (name, preferred_channel, notes)."""
    db.session.expire_all()
    rows = db.session.scalars(select(PatientRecord).where(PatientRecord.patient_id == patient_id))
    return {db.session.get(Clinic, r.clinic_id).name: (r.name, r.preferred_channel, r.notes) for r in rows}


def test_another_clinic_booking_the_number_sees_nothing_the_first_recorded(client, people, known):
    booked = kumasi_books(client, people)

    found = client.get(BASE, query_string={"phone": PHONE}, headers=headers(people, "other_staff"))
    one = detail(client, people, known.patient_id, "other_staff")

    [item] = found.get_json()["items"]
    assert (item["id"], item["name"], item["preferred_channel"], item["notes"]) == (str(known.patient_id), None,
                                                                                    "sms", None)  # fmt: skip
    assert [r["clinic_id"] for r in item["records"]] == [str(people["other"].id)]
    body = one.get_json()
    assert [a["id"] for a in body["appointments"]] == [booked["id"]] and body["messages"] == []
    for answer in (found, one):
        text = answer.get_data(as_text=True)
        assert A_NAME not in text and A_NOTES not in text and "whatsapp" not in text and str(known.id) not in text


def test_a_bulk_booking_of_known_numbers_reveals_no_name_and_changes_no_record(client, people, known):
    neighbour = book(people["home"], OTHER_PHONE, patient_name="Neo Tau")
    items = [{"action": "create", "patient_phone": phone, "appointment_datetime": KUMASI_AT,
              "patient_name": "Imposter", "channel": "sms"} for phone in (PHONE, OTHER_PHONE)]  # fmt: skip

    response = client.post("/api/v1/appointments/bulk", json={"items": items}, headers=headers(people, "other_staff"))

    assert [r["status"] for r in response.get_json()["results"]] == [201, 201]
    page = client.get(BASE, headers=headers(people, "other_staff")).get_json()["items"]
    assert sorted((i["phone"], i["name"]) for i in page) == [(PHONE, "Imposter"), (OTHER_PHONE, "Imposter")]
    assert records_of(known.patient_id) == {"Tlokweng Clinic": (A_NAME, "whatsapp", A_NOTES),
                                            "Kumasi Clinic": ("Imposter", "sms", None)}  # fmt: skip
    assert records_of(neighbour.patient_id)["Tlokweng Clinic"] == ("Neo Tau", "sms", None)


@pytest.mark.parametrize("by", ["clinic", "patient"])
def test_once_its_only_appointment_is_cancelled_the_other_clinic_loses_the_patient(client, people, known, by):
    booked = kumasi_books(client, people)
    if by == "clinic":
        assert client.delete(f"/api/v1/appointments/{booked['id']}",
                             headers=headers(people, "other_staff")).status_code == 200  # fmt: skip
    else:  # the patient answered "3: I cannot come"
        appointments.cancel(None, db.session.get(Appointment, uuid.UUID(booked["id"])), by_patient=True)
        db.session.commit()

    found = client.get(BASE, query_string={"phone": PHONE}, headers=headers(people, "other_staff"))
    patched = client.patch(f"{BASE}/{known.patient_id}", json={"notes": "Still here"},
                           headers=headers(people, "other_staff"))  # fmt: skip

    assert ids(found) == []
    # 403, as for any other clinic's patient: the id is one the caller was shown, so a 404 would hide nothing.
    assert detail(client, people, known.patient_id, "other_staff").status_code == 403
    assert patched.status_code == 403
    assert detail(client, people, known.patient_id).status_code == 200  # Tlokweng's appointment still stands


def test_another_clinics_booking_and_edits_change_only_its_own_record(client, people, known):
    booked = kumasi_books(client, people, patient_name="Someone Else", channel="sms")
    renamed = client.put(f"/api/v1/appointments/{booked['id']}", json={"patient_name": "Renamed"},
                         headers=headers(people, "other_staff"))  # fmt: skip
    patched = client.patch(f"{BASE}/{known.patient_id}", json={"name": "Patched", "notes": "Kumasi's own"},
                           headers=headers(people, "other_staff"))  # fmt: skip

    assert (booked["patient_name"], booked["channel"]) == ("Someone Else", "sms")
    assert renamed.get_json()["patient_name"] == "Renamed"
    assert (patched.get_json()["name"], patched.get_json()["notes"]) == ("Patched", "Kumasi's own")
    mine = detail(client, people, known.patient_id).get_json()
    assert (mine["name"], mine["preferred_channel"], mine["notes"]) == (A_NAME, "whatsapp", A_NOTES)
    assert [a["patient_name"] for a in mine["appointments"]] == [A_NAME]
    assert records_of(known.patient_id)["Kumasi Clinic"] == ("Patched", "sms", "Kumasi's own")


def test_staff_keep_their_clinics_own_record(client, people, known):
    change = {"notes": "Prefers mornings", "preferred_channel": "sms"}
    response = client.patch(f"{BASE}/{known.patient_id}", json=change, headers=headers(people))

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["name"], body["preferred_channel"], body["notes"]) == (A_NAME, "sms", "Prefers mornings")
    [row] = audit_rows("patient.update")
    assert row.details == {"clinic_id": str(people["home"].id), "fields": ["notes", "preferred_channel"]}
    assert "Prefers" not in str(row.details)


@pytest.mark.parametrize(("body", "field"), [({"preferred_channel": "telegram"}, "preferred_channel"),
                                             ({"notes": "x" * 2001}, "notes"), ({"name": ""}, "name")])  # fmt: skip
def test_a_bad_record_change_is_422(client, people, known, body, field):
    response = client.patch(f"{BASE}/{known.patient_id}", json=body, headers=headers(people))

    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]["json"]


def test_staff_of_a_clinic_that_never_booked_the_number_cannot_change_it(client, people, known):
    response = client.patch(f"{BASE}/{known.patient_id}", json={"name": "Mine now"},
                            headers=headers(people, "other_staff"))  # fmt: skip

    assert response.status_code == 403
    assert set(records_of(known.patient_id)) == {"Tlokweng Clinic"}


def test_admins_see_and_change_every_clinics_record(client, people, known):
    kumasi_books(client, people, patient_name="Someone Else")
    home, other = str(people["home"].id), str(people["other"].id)

    body = detail(client, people, known.patient_id, "admin").get_json()
    [item] = client.get(BASE, query_string={"phone": PHONE}, headers=headers(people, "admin")).get_json()["items"]
    changed = client.patch(f"{BASE}/{known.patient_id}", json={"clinic_id": other, "notes": "Checked"},
                           headers=headers(people, "admin"))  # fmt: skip
    unnamed = client.patch(f"{BASE}/{known.patient_id}", json={"notes": "?"}, headers=headers(people, "admin"))

    for shown in (body, item):
        assert (shown["name"], shown["preferred_channel"], shown["notes"]) == (None, None, None)
        assert {(r["clinic_id"], r["name"], r["preferred_channel"]) for r in shown["records"]} == {
            (home, A_NAME, "whatsapp"), (other, "Someone Else", "sms")}  # fmt: skip
    assert changed.status_code == 200 and unnamed.status_code == 422
    assert records_of(known.patient_id) == {"Tlokweng Clinic": (A_NAME, "whatsapp", A_NOTES),
                                            "Kumasi Clinic": ("Someone Else", "sms", "Checked")}  # fmt: skip


def test_admins_cannot_make_a_record_for_a_clinic_without_one(client, people, known):
    response = client.patch(f"{BASE}/{known.patient_id}", json={"clinic_id": str(people["other"].id), "name": "X"},
                            headers=headers(people, "admin"))  # fmt: skip

    assert response.status_code == 404
    assert set(records_of(known.patient_id)) == {"Tlokweng Clinic"}


# --- DELETE /patients/{id} ------------------------------------------------------------------------------------------


def test_erasure_removes_the_person_and_keeps_anonymous_counts(client, people, records):
    for record in db.session.scalars(select(PatientRecord).where(PatientRecord.patient_id == records["patient"])):
        record.name, record.notes = record.name or "Mpho", "Asked for morning visits"
    traced = TracingOutcome(appointment_id=records["at_home"], clinic_id=people["home"].id, outcome="unreachable",
                            note="Her sister says she moved to Maun")  # fmt: skip
    db.session.add(traced)
    db.session.commit()

    response = client.delete(f"{BASE}/{records['patient']}", headers=headers(people, "admin"))

    assert response.status_code == 204, response.get_data(as_text=True)
    db.session.expire_all()
    erased = f"erased:{records['patient']}"
    patient = db.session.get(Patient, records["patient"])
    assert patient.phone == erased and patient.erased_at is not None
    kept = db.session.scalars(select(PatientRecord).where(PatientRecord.patient_id == patient.id))
    assert sorted((r.name, r.notes, r.preferred_channel) for r in kept) == [(None, None, "sms")] * 2  # both clinics
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
    assert (db.session.get(TracingOutcome, traced.id).note, traced.outcome) == (None, "unreachable")
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
