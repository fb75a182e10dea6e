"""Demo data for ``make run``: a clinic in Gaborone with staff and patients' appointments (one of them yesterday's),
a clinic in Accra, a pharmacist, a clinician (second opinions), an admin.

Idempotent: run it any number of times; existing rows (matched by name, email or external ref) are left as they are.
The passwords are public (printed by ``make run``), so ``seed-demo`` refuses to run in production.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from flask import current_app
from sqlalchemy import delete, select, update

from app.extensions import db
from app.models import (
    Analysis,
    Appointment,
    ChatLinkCode,
    Clinic,
    Consultation,
    ConsultationImage,
    Contact,
    Recommendation,
    ReviewRequest,
    StockItem,
    StockMovement,
    User,
)
from app.models.appointment import STATUS_SCHEDULED
from app.models.stock import KIND_DISPENSED, KIND_RECEIVED
from app.services import appointments, consultations, formulary
from app.services.passwords import hash_password, hash_pin

CLINICS = (
    {"name": "Gaborone Main Clinic", "country": "BW", "timezone": "Africa/Gaborone", "default_language": "tn"},
    {"name": "Accra Central Clinic", "country": "GH", "timezone": "Africa/Accra", "default_language": "en"},
)
# (email, password, role, clinic name, phone, name, pharmacy, language)
ACCOUNTS = (
    ("admin@thusa.example", "thusa-admin-demo", "admin", None, None, "Demo Admin", None, "en"),
    ("staff@thusa.example", "thusa-staff-demo", "staff", "Gaborone Main Clinic", "+26771000001", "Neo Molefe",
     None, "tn"),
    ("viewer@thusa.example", "thusa-viewer-demo", "viewer", "Gaborone Main Clinic", None, "Kagiso Dube", None, "en"),
    ("accra.staff@thusa.example", "thusa-staff-demo", "staff", "Accra Central Clinic", "+233241000001", "Ama Mensah",
     None, "en"),
    ("pharmacist@thusa.example", "thusa-pharmacist-demo", "pharmacist", None, "+233241000002", "Kwame Asante",
     "Makola Pharmacy", "en"),
    # Second opinions: covers every pharmacy; answers the review queue (the simulator's "Answer as the clinician").
    ("clinician@thusa.example", "thusa-clinician-demo", "clinician", None, None, "Dr Efua Owusu", None, "en"),
)  # fmt: skip

# (external ref, phone, name, language, days from today, local time): patients of the Gaborone clinic, so reminders
# and replies can be tried on the console SMS gateway and at /simulator.
APPOINTMENTS = (
    ("DEMO-1", "+26772000001", "Mpho Kgosi", "tn", 1, time(9, 0)),
    ("DEMO-2", "+26772000002", "Lesego Tau", "en", 3, time(10, 30)),
    ("DEMO-3", "+26772000003", "Onalenna Seretse", None, 5, time(14, 0)),
)
# (external ref, phone, name, language, days before today, local time): a visit of the Gaborone clinic that has taken
# place, so its attendance can be recorded and, once missed, traced (the Postman collection does both). Kept apart
# from APPOINTMENTS, whose patients are the phone simulator's. The hourly mark-missed job marks it missed soon after
# `make run` starts; its recovery SMS goes to the console sender.
PAST_APPOINTMENTS = (("DEMO-0", "+26772000004", "Kabelo Nkwe", "tn", 1, time(10, 0)),)


def seed_demo() -> list[str]:
    """Create whatever of the demo data is missing.

    Returns:
        Lines to print: each demo sign-in with its password.
    """
    clinics = {}
    for data in CLINICS:
        clinic = db.session.scalar(select(Clinic).where(Clinic.name == data["name"]))
        if clinic is None:
            clinic = Clinic(**data)
            db.session.add(clinic)
            db.session.flush()
        clinics[data["name"]] = clinic
    lines = ["Demo sign-ins (POST /api/v1/auth/login):"]
    for email, password, role, clinic_name, phone, name, pharmacy, language in ACCOUNTS:
        if db.session.scalar(select(User.id).where(User.email == email)) is None:
            db.session.add(
                User(
                    email=email,
                    password_hash=hash_password(password),
                    role=role,
                    name=name,
                    phone=phone,
                    phone_verified_at=datetime.now(UTC) if phone else None,  # set by the operator, like an admin
                    clinic_id=clinics[clinic_name].id if clinic_name else None,
                    pharmacy_name=pharmacy,
                    language=language,
                    active=True,
                    all_pharmacies=role == "clinician",
                )  # fmt: skip
            )
        lines.append(f"  {role:<10} {email:<28} {password}")
    _seed_appointments(clinics["Gaborone Main Clinic"])
    # Skin consultations: the formulary and triage guidelines; the demo pharmacist (+233241000002, proven: the seed
    # set it, as an admin would) is linked as soon as WhatsApp brings a message from that number (or /link CODE).
    formulary.seed()
    consultations.seed_guidelines()
    lines.extend(_seed_stock(clinics["Gaborone Main Clinic"]))
    db.session.commit()
    return lines


def _seed_appointments(clinic: Clinic) -> None:
    today = datetime.now(UTC).astimezone(appointments.zone(clinic)).date()
    for ref, phone, name, language, days, at in APPOINTMENTS:
        if not _seeded(clinic, ref):
            when = datetime.combine(today + timedelta(days=days), at, tzinfo=appointments.zone(clinic))
            appointments.create(None, clinic, patient_phone=phone, appointment_datetime=when.astimezone(UTC),
                                language=language, patient_name=name, external_ref=ref)  # fmt: skip
    for ref, phone, name, language, days_ago, at in PAST_APPOINTMENTS:
        if not _seeded(clinic, ref):
            when = datetime.combine(today - timedelta(days=days_ago), at, tzinfo=appointments.zone(clinic))
            _store_past_visit(clinic, ref, phone, name, language, when.astimezone(UTC))


def _seeded(clinic: Clinic, ref: str) -> bool:
    key = appointments.import_key(external_ref=ref, phone="", at=datetime.now(UTC))  # a reference decides alone
    return db.session.scalar(
        select(Appointment.id).where(Appointment.clinic_id == clinic.id, Appointment.import_key == key)
    ) is not None  # fmt: skip


def _store_past_visit(clinic: Clinic, ref: str, phone: str, name: str, language: str | None, at: datetime) -> None:
    """A visit that was booked before ``at`` and not marked since, as the booking would have left it.

    Written directly: booking refuses a time that has passed, rightly for everyone but the demo's history.
    """
    patient = appointments.patient_for(phone, language=language)
    record = appointments.record_for(clinic, patient, name=name)
    visit = Appointment(clinic_id=clinic.id, clinic=clinic, patient_id=patient.id, patient=patient,
                        appointment_datetime=at, language=language, external_ref=ref, status=STATUS_SCHEDULED,
                        import_key=appointments.import_key(external_ref=ref, phone=phone, at=at),
                        channel=record.preferred_channel)  # fmt: skip
    appointments.plan_reminders(visit)  # none: every reminder's time has passed
    db.session.add(visit)
    db.session.flush()


# --- Clinic stock and the staff USSD menu ------------------------------------------------------------------------
DEMO_PIN_PHONE, DEMO_PIN = "+26771000001", "2580"  # the Gaborone staff member's USSD PIN (public, like the passwords)
# (name, code, unit, reorder level, received 30 days ago, dispensed a day over the last 30 days)
STOCK = (
    ("Paracetamol 500mg", "PCM500", "tablets", 200, 1500, 30),
    ("Amoxicillin 250mg", "AMX250", "capsules", 150, 900, 20),
    ("ORS sachets", "ORS", "sachets", 50, 300, 6),
    ("Condoms", "CND", "pieces", 100, 1000, 25),
    ("Malaria RDT kits", "MRDT", "kits", 20, 50, 1),  # at its reorder level: shows under "Low stock"
    ("Gloves", "GLV", "pairs", 100, 300, 6),  # just above its reorder level: dispensing 20 crosses it
)


def _seed_stock(clinic: Clinic) -> list[str]:
    """The demo staff member's PIN and the clinic's stock, with 30 days of history (only where missing)."""
    staff = db.session.scalar(select(User).where(User.phone == DEMO_PIN_PHONE))
    if staff is not None and staff.pin_hash is None:
        staff.pin_hash = hash_pin(DEMO_PIN)
    now = datetime.now(UTC)
    for name, code, unit, reorder, received, per_day in STOCK:
        if db.session.scalar(select(StockItem.id).where(StockItem.clinic_id == clinic.id, StockItem.name == name)):
            continue
        item = StockItem(clinic_id=clinic.id, name=name, code=code, unit=unit, level=0, reorder_level=reorder)
        db.session.add(item)
        db.session.flush()
        level = received
        rows = [(KIND_RECEIVED, received, received, now - timedelta(days=30))]
        for day in range(29, -1, -1):
            level -= per_day
            rows.append((KIND_DISPENSED, per_day, -per_day, now - timedelta(days=day, hours=2)))
        level_after = 0
        for kind, quantity, delta, at in rows:
            level_after += delta
            db.session.add(StockMovement(item_id=item.id, kind=kind, quantity=quantity, delta=delta,
                                         level_after=level_after, user_id=staff.id if staff else None,
                                         channel="api", at=at, note="demo data"))  # fmt: skip
        item.level = level
        item.low_alert_at = now if level <= reorder else None
    code = current_app.config["USSD_SERVICE_CODE"]
    return [f"USSD staff menu: dial {code} from {DEMO_PIN_PHONE}, PIN {DEMO_PIN}"]


# --- Reset (the phone simulator's "reset demo data", stock and skin consultations included) ----------------------
def erase_demo_work() -> None:
    """Undo what the demo accounts and clinics did beyond the seed, so that :func:`seed_demo` puts it back.

    In the caller's transaction (no commit): the demo accounts' consultations with their photos, analyses,
    recommendations and second opinions, their chat link codes and chat links; every stock item of the demo clinics with its ledger
    (items staff added by hand there are demo data too; the seed recreates its own at the seeded levels, with
    the low-stock alerts as seeded); and the demo accounts' USSD PIN state and language as the seed leaves them.
    Audit rows stay: they record who read what, which a demo reset must not rewrite.
    """
    users = db.session.scalars(select(User).where(User.email.in_([a[0] for a in ACCOUNTS]))).all()
    user_ids = [u.id for u in users]
    consultation_ids = select(Consultation.id).where(Consultation.user_id.in_(user_ids))
    clinic_ids = select(Clinic.id).where(Clinic.name.in_([c["name"] for c in CLINICS]))
    item_ids = select(StockItem.id).where(StockItem.clinic_id.in_(clinic_ids))
    bulk = {"synchronize_session": False}
    # Children first: SQLite and PostgreSQL would cascade these, but only with their foreign keys on.
    for model in (Analysis, Recommendation, ConsultationImage, ReviewRequest):
        db.session.execute(delete(model).where(model.consultation_id.in_(consultation_ids)), execution_options=bulk)
    db.session.execute(delete(Consultation).where(Consultation.user_id.in_(user_ids)), execution_options=bulk)
    db.session.execute(delete(ChatLinkCode).where(ChatLinkCode.user_id.in_(user_ids)), execution_options=bulk)
    db.session.execute(update(Contact).where(Contact.user_id.in_(user_ids)).values(user_id=None),
                       execution_options=bulk)  # fmt: skip
    db.session.execute(delete(StockMovement).where(StockMovement.item_id.in_(item_ids)), execution_options=bulk)
    db.session.execute(delete(StockItem).where(StockItem.clinic_id.in_(clinic_ids)), execution_options=bulk)
    languages = {a[0]: a[7] for a in ACCOUNTS}
    for user in users:
        user.pin_hash, user.pin_failed_attempts, user.pin_locked_until = None, 0, None  # the seed sets the demo PIN
        user.language = languages[user.email]
