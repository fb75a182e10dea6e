"""Clinic notices: one message to each patient of a group (a closure, changed hours), in their language.

The audience is the clinic's patients with a visit on one day (``{"date"}``), or with a visit still coming
(``{"status": "scheduled", "from", "to"}``, days in clinic time, both included). Each patient gets one message
(key ``notice:<notice id>:<patient id>``) through the outbox, in the language of their first visit in the audience
(:func:`app.services.appointment_rules.language_of`), to the channel the clinic's record of them names; never to an
opted-out or erased number; inside the clinic's sending hours (outside them the row waits for the next allowed
time); and counted against the per-number hourly SMS cap (a patient over it is left out and counted ``capped``).
A text over 2 SMS segments is refused. ``dry_run`` answers the same counts and cost and writes nothing but its
audit row.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import func, select

from app.errors import NotFound, ValidationFailed
from app.extensions import db
from app.i18n.gsm7 import sms_encoding
from app.messaging.outbox import Outgoing, SendCapReached, count_against_caps, queue_many
from app.models import Appointment, ClinicNotice, Message, Patient, PatientRecord, utcnow
from app.models.appointment import ACTIVE_STATUSES
from app.models.channel import SMS
from app.models.message_log import KIND_NOTICE
from app.services import audit, clinics
from app.services.appointment_rules import language_of
from app.services.appointments import in_period
from app.services.clinic_calendar import next_send_time

MAX_SEGMENTS = 2
NOTICE_KEY = "notice:"  # + notice id + ":" + patient id


def _segments(text: str, field: str) -> int:
    _, segments = sms_encoding(text)
    if segments > MAX_SEGMENTS:
        raise ValidationFailed(f"{field} would take {segments} SMS segments; at most {MAX_SEGMENTS}.",
                               {"json": {field: [f"At most {MAX_SEGMENTS} SMS segments (this is {segments})."]}})  # fmt: skip
    return segments


def _audience(clinic, audience: dict, now: datetime) -> list[Appointment]:
    """The audience's visits, earliest first (a patient's first one decides their language)."""
    stmt = (
        select(Appointment)
        .join(Patient, Appointment.patient_id == Patient.id)
        .where(Appointment.clinic_id == clinic.id, Appointment.status.in_(ACTIVE_STATUSES),
               Patient.erased_at.is_(None))
        .order_by(Appointment.appointment_datetime, Appointment.id)
    )  # fmt: skip
    if "date" in audience:
        stmt = stmt.where(in_period(audience["date"], audience["date"], clinic))
    else:
        stmt = stmt.where(in_period(audience.get("since"), audience.get("until"), clinic),
                          Appointment.appointment_datetime > now)  # fmt: skip
    return list(db.session.scalars(stmt).unique())


def send(actor, data: dict, *, now: datetime | None = None) -> dict:
    """Plan (``dry_run``) or send a notice; commits. Staff for their clinic, admins for any.

    Returns:
        The notice as the API shows it: ``id`` (None for a dry run), ``recipients``, ``opted_out``, ``capped``,
        ``segments`` per language, ``segment_total`` (the cost), and ``delivery`` counts.

    Raises:
        Forbidden: another clinic's. ValidationFailed: no such clinic, a text over 2 segments.
    """
    now = now or utcnow()
    clinic = clinics.clinic_for(actor, data.get("clinic_id"), required=True)
    segments = {"en": _segments(data["message_en"], "message_en"), "tn": _segments(data["message_tn"], "message_tn")}
    audience = {key: value for key, value in data["audience"].items() if value is not None}
    visits = _audience(clinic, audience, now)
    channels = dict(db.session.execute(select(PatientRecord.patient_id, PatientRecord.preferred_channel).where(
        PatientRecord.clinic_id == clinic.id, PatientRecord.patient_id.in_({v.patient_id for v in visits}))).all())  # fmt: skip
    chosen: dict[uuid.UUID, Appointment] = {}
    for visit in visits:
        chosen.setdefault(visit.patient_id, visit)
    opted_out = sum(1 for v in chosen.values() if v.patient.opted_out_at is not None)
    reachable = [v for v in chosen.values() if v.patient.opted_out_at is None]
    notice_id = None if data["dry_run"] else uuid.uuid4()
    capped, outgoing = 0, []
    send_at = next_send_time(clinic, now)
    for visit in reachable:
        channel = channels.get(visit.patient_id) or SMS
        if not data["dry_run"] and channel == SMS:
            try:
                count_against_caps(visit.patient.phone)
            except SendCapReached:
                capped += 1
                continue
        language = language_of(visit)
        outgoing.append(Outgoing(channel=channel, address=visit.patient.phone, kind=KIND_NOTICE,
                                 text=data["message_tn"] if language == "tn" else data["message_en"],
                                 language=language, clinic_id=clinic.id,
                                 dedupe_key=f"{NOTICE_KEY}{notice_id}:{visit.patient_id}",
                                 send_at=send_at if send_at > now else None))  # fmt: skip
    total = sum(segments["tn" if m.language == "tn" else "en"] for m in outgoing)
    summary = {"id": notice_id, "clinic_id": clinic.id, "audience": _json(audience), "dry_run": data["dry_run"],
               "recipients": len(outgoing), "opted_out": opted_out, "capped": capped, "segments": segments,
               "segment_total": total, "created_at": now}  # fmt: skip
    if not data["dry_run"]:
        db.session.add(ClinicNotice(id=notice_id, clinic_id=clinic.id, audience=summary["audience"],
                                    message_en=data["message_en"], message_tn=data["message_tn"],
                                    recipients=len(outgoing), segments=segments, segment_total=total,
                                    created_by=getattr(actor, "user_id", None)))  # fmt: skip
        db.session.flush()
        queue_many(outgoing, now=now)
    audit.record(actor, "notice.plan" if data["dry_run"] else "notice.send", "notice", notice_id,
                 {"clinic_id": str(clinic.id), "recipients": len(outgoing), "segment_total": total})  # fmt: skip
    db.session.commit()
    return {**summary, "delivery": _delivery(notice_id) if notice_id else {}}


def _json(audience: dict) -> dict:
    return {("from" if k == "since" else "to" if k == "until" else k): (v.isoformat() if isinstance(v, date) else v)
            for k, v in audience.items()}  # fmt: skip


def _delivery(notice_id: uuid.UUID) -> dict[str, int]:
    rows = db.session.execute(
        select(Message.status, func.count()).where(Message.dedupe_key.startswith(f"{NOTICE_KEY}{notice_id}:"))
        .group_by(Message.status)
    ).all()  # fmt: skip
    return {status: int(n) for status, n in rows}


def read(actor, notice_id: uuid.UUID) -> dict:
    """One notice with its delivery counts by message status (an audited read).

    Raises:
        NotFound; Forbidden: another clinic's.
    """
    notice = db.session.get(ClinicNotice, notice_id)
    if notice is None:
        raise NotFound("No notice with this id.")
    clinics.clinic_for(actor, notice.clinic_id, location="path")
    audit.record(actor, "notice.read", "notice", notice.id)
    db.session.commit()
    return {"id": notice.id, "clinic_id": notice.clinic_id, "audience": notice.audience, "dry_run": False,
            "recipients": notice.recipients, "opted_out": None, "capped": None, "segments": notice.segments,
            "segment_total": notice.segment_total, "created_at": notice.created_at,
            "delivery": _delivery(notice.id)}  # fmt: skip
