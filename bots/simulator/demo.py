"""The simulator's demo data: which numbers its phones are, what they may read, reminders now, and the reset.

The simulator only ever speaks for, and reads the messages of, the demo numbers seeded by
:mod:`app.services.demo` (and the demo pharmacist's Telegram chat id below). It is not a way to read anybody
else's messages, so every address coming from the browser is checked against :func:`addresses` first.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import time

from sqlalchemy import delete, select

from app.extensions import db
from app.models import (
    Appointment,
    AppointmentSeries,
    Clinic,
    Consultation,
    Contact,
    Conversation,
    Message,
    Patient,
    PatientRecord,
    ReviewRequest,
    TracingOutcome,
    User,
    utcnow,
)
from app.models.appointment import ACTIVE_STATUSES
from app.models.channel import SMS, TELEGRAM, USSD, WHATSAPP
from app.models.clinic import DEFAULT_SEND_WINDOW
from app.models.message_log import DIRECTION_IN, DIRECTION_OUT, STATUS_DELIVERED, STATUS_READ, STATUS_SENT
from app.models.review import REVIEW_OPEN
from app.security import Actor
from app.services import appointments, reviews, upkeep
from app.services import demo as seed
from bots.flows import ussd_staff

DEMO_PIN = "2580"  # the staff USSD PIN the demo staff get; shown on the page, never checked here
# The demo pharmacist's Telegram user and private chat (the same id, as in any private chat).
TELEGRAM_CHAT_ID = "700000002"
ALL_DAY = (time(0, 0), time(23, 59))  # the widest window a clinic can have (its end is exclusive)
HISTORY_LIMIT = 50  # messages per phone shown
SHOWN_OUT_STATUSES = (STATUS_SENT, STATUS_DELIVERED, STATUS_READ)  # what the console sender has "sent"


@dataclass(frozen=True)
class Person:
    """A demo phone: its number (or chat id), who it is, and the channels the simulator uses for it."""

    address: str
    name: str
    role: str  # patient, staff, pharmacist
    clinic: str | None
    channels: tuple[str, ...]


def people() -> list[Person]:
    """Every demo phone the simulator can act as, patients first."""
    patients = [Person(phone, name, "patient", "Gaborone Main Clinic", (SMS, USSD))
                for _ref, phone, name, _language, _days, _at in seed.APPOINTMENTS]  # fmt: skip
    others = []
    for _email, _password, role, clinic, phone, name, _pharmacy, _language in seed.ACCOUNTS:
        if phone and role == "staff":
            others.append(Person(phone, name, role, clinic, (USSD, SMS)))
        elif phone and role == "pharmacist":
            others.append(Person(phone, name, role, None, (WHATSAPP,)))
            others.append(Person(TELEGRAM_CHAT_ID, name, role, None, (TELEGRAM,)))
    return patients + others


def person(address: str) -> Person | None:
    """The demo phone with this address, or None for any other number."""
    return next((p for p in people() if p.address == address), None)


def addresses() -> set[str]:
    """Every address the simulator may send as and read."""
    return {p.address for p in people()}


def pharmacist() -> Person:
    """The demo pharmacist's WhatsApp number."""
    return next(p for p in people() if p.role == "pharmacist" and WHATSAPP in p.channels)


def clinics(language: str = "en") -> list[dict]:
    """The demo clinics and, for each, its demo patients with their next visit in ``language`` (the pickers)."""
    names = [c["name"] for c in seed.CLINICS]
    rows = db.session.scalars(select(Clinic).where(Clinic.name.in_(names)).order_by(Clinic.name)).all()
    result = []
    for clinic in sorted(rows, key=lambda c: names.index(c.name)):
        patients = []
        for p in people():
            if p.role == "patient" and p.clinic == clinic.name:
                visit = _next_visit(clinic, p.address)
                patients.append({"phone": p.address, "name": p.name,
                                 "visit": appointments.format_when(clinic, visit.appointment_datetime, language)
                                 if visit else None})  # fmt: skip
        result.append({"id": str(clinic.id), "name": clinic.name, "patients": patients})
    return result


def demo_clinic(clinic_id: str) -> Clinic | None:
    """The demo clinic with this id (None for an unknown id or a clinic that is not demo data)."""
    try:
        clinic = db.session.get(Clinic, uuid.UUID(str(clinic_id)))
    except ValueError:
        return None
    return clinic if clinic is not None and clinic.name in {c["name"] for c in seed.CLINICS} else None


def _next_visit(clinic: Clinic, phone: str) -> Appointment | None:
    return db.session.scalar(
        select(Appointment)
        .join(Patient, Patient.id == Appointment.patient_id)
        .where(Patient.phone == phone, Appointment.clinic_id == clinic.id,
               Appointment.status.in_(ACTIVE_STATUSES), Appointment.appointment_datetime > utcnow())
        .order_by(Appointment.appointment_datetime)
        .limit(1)
    )  # fmt: skip


def messages(address: str, channels: tuple[str, ...]) -> list[dict]:
    """The latest messages to and from one demo address on ``channels``, oldest first.

    Outbound messages show once the console sender has sent them (``sent`` or later): what the phone would have
    received. Inbound ones show as soon as they are stored.
    """
    rows = db.session.scalars(
        select(Message)
        .where(Message.address == address, Message.channel.in_(channels))
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(HISTORY_LIMIT)
    ).all()
    shown = [m for m in rows if m.direction != DIRECTION_OUT or m.status in SHOWN_OUT_STATUSES]
    return [
        {
            "id": str(m.id),
            "direction": m.direction,
            "channel": m.channel,
            "provider": m.provider,
            "text": m.text or "",
            "buttons": [{"id": b.get("id"), "title": b.get("title")} for b in (m.buttons or [])],
            "media": len(m.media or []),
            "status": m.status,
            "at": m.created_at.isoformat(),
        }
        for m in reversed(shown)
    ]


def send_reminder_now(clinic: Clinic, phone: str) -> dict:
    """Make the patient's next reminder due now and run the real reminder job, so it goes out through the outbox.

    The demo clinic's sending hours are widened to the whole day first: the send worker holds a reminder outside
    a clinic's hours (correctly), which would make the demo fail every evening. Reset restores the seeded hours.

    Returns:
        ``{"result": "queued" | "sent_before" | "none", "name", "hours": the (start, end) a reset restores}``.
    """
    who = person(phone)
    name = who.name if who else phone
    visit = _next_visit(clinic, phone)
    hours = tuple(moment.strftime("%H:%M") for moment in DEFAULT_SEND_WINDOW)  # what the reset puts back
    if visit is None:
        return {"result": "none", "name": name, "hours": hours}
    if visit.next_reminder_offset is None and db.session.scalar(
        select(Message.id).where(Message.dedupe_key.startswith(f"reminder:{visit.id}:")).limit(1)
    ):
        # Every reminder of this visit has gone out: forcing the earliest offset again would send a second one
        # whenever that offset's own time is still ahead (a visit more than a day away, say).
        return {"result": "sent_before", "name": name, "hours": hours}
    now = utcnow()
    clinic.send_window_start, clinic.send_window_end = ALL_DAY
    offsets = sorted(int(o) for o in clinic.reminder_offsets_minutes)
    visit.next_reminder_offset = visit.next_reminder_offset or offsets[-1]
    visit.next_reminder_at = now
    key = appointments.reminder_key(visit, appointments.due_offset(visit, now))
    db.session.commit()
    upkeep.queue_due_reminders(now)
    row = db.session.scalar(select(Message).where(Message.dedupe_key == key))
    fresh = row is not None and row.created_at >= now
    return {"result": "queued" if fresh else "sent_before", "name": name, "hours": hours}


CLINICIAN_EMAIL = "clinician@thusa.example"
DEMO_ADVICE = ("Agree with the pharmacy plan. Review in one week; send to the clinic if it spreads or fever "
               "starts.")  # fmt: skip


def answer_review() -> dict:
    """Answer the demo pharmacist's oldest open second-opinion request as the demo clinician, through the real
    service (:func:`app.services.reviews.answer`: audited, sent once through the outbox to the pharmacist's chat).

    The demo answer keeps the rules' level and the pharmacist's impression (``likely``).

    Returns:
        ``{"result": "answered" | "none"}``.
    """
    clinician = db.session.scalar(select(User).where(User.email == CLINICIAN_EMAIL, User.active.is_(True)))
    pharmacist_user = db.session.scalar(select(User).where(User.phone == pharmacist().address))
    if clinician is None or pharmacist_user is None:
        return {"result": "none"}
    review = db.session.scalar(
        select(ReviewRequest).join(Consultation, ReviewRequest.consultation_id == Consultation.id)
        .where(Consultation.user_id == pharmacist_user.id, ReviewRequest.status == REVIEW_OPEN)
        .order_by(ReviewRequest.requested_at)
    )  # fmt: skip
    if review is None:
        return {"result": "none"}
    consultation = db.session.get(Consultation, review.consultation_id)
    actor = Actor(clinician.id, clinician.role, None, None)
    reviews.answer(actor, review.id, {"diagnosis": consultation.condition or "unsure", "level": review.rules_level,
                                      "advice": DEMO_ADVICE, "confidence": "likely"})  # fmt: skip
    return {"result": "answered"}


def reset() -> None:
    """Put the demo data back where ``seed-demo`` leaves it, then run the seed again.

    Deleted: the demo numbers' messages, conversations, patients (with the clinics' records of them), appointments
    and contacts, those of the demo's past visit's patient too (not a simulator phone); the demo accounts'
    consultations, chat links and link codes, and the demo clinics' stock (:func:`app.services.demo.erase_demo_work`,
    which also clears the PIN lock and restores the demo PIN). The demo clinics' sending hours are restored, and
    once that is committed the staff USSD sessions of the demo phones are forgotten in Redis (exact keys, from the
    session ids their messages carry). Idempotent, and it touches nothing but demo data.
    """
    # The past visit's patient: once marked or traced, only a reset brings that visit back as the seed left it.
    demo = addresses() | {phone for _ref, phone, *_ in seed.PAST_APPOINTMENTS}
    contact_ids = select(Contact.id).where(Contact.address.in_(demo))
    patient_ids = select(Patient.id).where(Patient.phone.in_(demo))
    sessions = _ussd_sessions(demo)
    staff_ids = [str(u) for u in db.session.scalars(select(User.id).where(User.phone.in_(demo)))]
    seed.erase_demo_work()
    db.session.execute(
        delete(Message).where((Message.address.in_(demo)) | (Message.contact_id.in_(contact_ids))),
        execution_options={"synchronize_session": False},
    )
    db.session.execute(delete(Conversation).where(Conversation.contact_id.in_(contact_ids)),
                       execution_options={"synchronize_session": False})  # fmt: skip
    visits = select(Appointment.id).where(Appointment.patient_id.in_(patient_ids))
    db.session.execute(delete(TracingOutcome).where(TracingOutcome.appointment_id.in_(visits)),
                       execution_options={"synchronize_session": False})  # fmt: skip
    db.session.execute(delete(Appointment).where(Appointment.patient_id.in_(patient_ids)),
                       execution_options={"synchronize_session": False})  # fmt: skip
    db.session.execute(delete(AppointmentSeries).where(AppointmentSeries.patient_id.in_(patient_ids)),
                       execution_options={"synchronize_session": False})  # fmt: skip
    db.session.execute(delete(PatientRecord).where(PatientRecord.patient_id.in_(patient_ids)),
                       execution_options={"synchronize_session": False})  # fmt: skip
    db.session.execute(delete(Patient).where(Patient.phone.in_(demo)), execution_options={"synchronize_session": False})
    db.session.execute(delete(Contact).where(Contact.address.in_(demo)),
                       execution_options={"synchronize_session": False})  # fmt: skip
    names = [c["name"] for c in seed.CLINICS]
    for clinic in db.session.scalars(select(Clinic).where(Clinic.name.in_(names))):
        clinic.send_window_start, clinic.send_window_end = DEFAULT_SEND_WINDOW
    db.session.commit()
    db.session.expire_all()
    # After the commit: a failed reset keeps its sessions, and a session left behind would point at deleted items.
    ussd_staff.forget(sessions, staff_ids)
    seed.seed_demo()


def _ussd_sessions(demo: set[str]) -> set[str]:
    """The USSD session ids the demo phones used: their conversations' and their inbound hops' (``SESSION:…``),
    and the message ids the staff menu falls back on when a hop carried no session id."""
    known = select(Conversation.session_id).join(Contact, Contact.id == Conversation.contact_id)
    sessions = set(db.session.scalars(known.where(Contact.address.in_(demo), Conversation.session_id.is_not(None))))
    hops = db.session.execute(
        select(Message.id, Message.provider_id).where(
            Message.address.in_(demo), Message.channel == USSD, Message.direction == DIRECTION_IN
        )
    )
    for message_id, provider_id in hops:
        sessions.add(str(message_id))
        if provider_id:
            sessions.add(provider_id.rsplit(":", 1)[0])
    return sessions
