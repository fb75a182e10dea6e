"""Builders shared by the test modules: clinics, users and their tokens, booked appointments.

Every builder writes through the app's own models and services and commits, inside the caller's app context.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta

from flask import Flask, current_app
from flask.testing import FlaskClient

from app.extensions import db
from app.models import Appointment, Clinic, User, utcnow
from app.models.appointment import STATUS_SCHEDULED
from app.security import current_actor
from app.services import accounts, appointments, tokens
from app.services.passwords import hash_password

PASSWORD = "correct-horse-battery"
PHONE = "+26771234567"

# argon2 salts each hash, so any hash of PASSWORD verifies it: one per hashing profile (the test profile or the
# production one) is made on first use and shared by every user the tests create.
_password_hashes: dict[bool, str] = {}


def password_hash() -> str:
    """A hash of ``PASSWORD`` as the current app's ``hash_password`` makes it, computed once per profile."""
    test_profile = current_app.config["THUSA_ENV"] == "test"
    if test_profile not in _password_hashes:
        _password_hashes[test_profile] = hash_password(PASSWORD)
    return _password_hashes[test_profile]


def make_clinic(name: str = "Tlokweng Clinic", country: str = "BW", timezone: str = "Africa/Gaborone",
                language: str = "tn", *, commit: bool = True, **settings) -> Clinic:  # fmt: skip
    """A clinic (Botswana, Africa/Gaborone by default) with any other column given as ``settings``.

    ``commit=False`` only flushes it, for a caller that commits several rows at once.
    """
    clinic = Clinic(name=name, country=country, timezone=timezone, default_language=language, **settings)
    db.session.add(clinic)
    if commit:
        db.session.commit()
    else:
        db.session.flush()
    return clinic


def make_user(role: str, *, clinic: Clinic | None = None, email: str | None = None, phone: str | None = None,
              active: bool = True, language: str = "en", commit: bool = True,
              phone_proven: bool = True) -> User:  # fmt: skip
    """A user of ``role`` whose password is ``PASSWORD`` (``commit=False``: flushed only).

    A ``phone`` is proven, as when an admin creates the account, unless ``phone_proven`` is false (as when a
    pharmacist registers themself).
    """
    user = User(
        email=email or f"{role}-{uuid.uuid4().hex[:8]}@example.org",
        password_hash=password_hash(),
        role=role,
        name=role.title(),
        phone=phone,
        phone_verified_at=utcnow() if phone and phone_proven else None,
        clinic_id=clinic.id if clinic else None,
        pharmacy_name="Osu Pharmacy" if role == "pharmacist" else None,
        language=language,
        active=active,
    )
    db.session.add(user)
    if commit:
        db.session.commit()
    else:
        db.session.flush()
    return user


def login(client: FlaskClient, user: User, password: str = PASSWORD) -> dict:
    """Sign in through ``POST /api/v1/auth/login``; the token pair and the user."""
    response = client.post("/api/v1/auth/login", json={"email": user.email, "password": password})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def sign_in(app: Flask, user: User, password: str = PASSWORD) -> dict:
    """What ``POST /api/v1/auth/login`` does for ``user``, without the HTTP round trip.

    The same service calls as the endpoint (check the password, record the sign-in in the audit log, issue a new
    token family), in a request from the test client's address: the tokens are real and carry the same claims.
    """
    with app.test_request_context("/api/v1/auth/login", method="POST"):
        signed_in = accounts.authenticate(current_actor(), user.email, password)
        return tokens.issue_pair(signed_in)


def bearer(token: str) -> dict:
    """The Authorization header for an access token."""
    return {"Authorization": f"Bearer {token}"}


def book(clinic: Clinic, phone: str = PHONE, at: datetime | None = None, *, days: float = 3,
         **fields) -> Appointment:  # fmt: skip
    """An appointment booked as the API books it (``appointments.create``), committed.

    At ``at``, else ``days`` from now on the minute; ``fields`` are the service's other arguments (language,
    patient_name, external_ref ...).
    """
    when = at or (utcnow() + timedelta(days=days)).replace(second=0, microsecond=0)
    appointment = appointments.create(None, clinic, patient_phone=phone, appointment_datetime=when, **fields)
    db.session.commit()
    return appointment


def booking(default_at: datetime) -> Callable[..., Appointment]:
    """``book`` with a module's own fixed date as the default time."""

    def book_at(clinic: Clinic, phone: str = PHONE, at: datetime | None = None, **fields) -> Appointment:
        return book(clinic, phone, at or default_at, **fields)

    return book_at


def store_appointment(clinic: Clinic, at: datetime, *, phone: str = PHONE, status: str = STATUS_SCHEDULED,
                      channel: str = "sms", patient_language: str | None = None, planned: datetime | None = None,
                      **fields) -> Appointment:  # fmt: skip
    """An appointment row written directly, not through the booking service (for rules that are not the booking's).

    Its patient is found or made by number (with ``patient_language``), and the clinic's record of them (with
    ``channel``); when ``planned`` is given, its reminders are planned as a booking at that moment plans them.
    ``fields`` are other columns (language ...).
    """
    patient = appointments.patient_for(phone, language=patient_language)
    appointments.record_for(clinic, patient, channel=channel)
    appointment = Appointment(
        clinic_id=clinic.id, clinic=clinic, patient_id=patient.id, patient=patient, appointment_datetime=at,
        status=status, channel=channel, import_key=appointments.import_key(external_ref=None, phone=phone, at=at),
        **fields,
    )  # fmt: skip
    if planned is not None:  # before the INSERT, as the booking does: the row goes in planned (no UPDATE after)
        appointments.plan_reminders(appointment, planned)
    db.session.add(appointment)
    db.session.commit()
    return appointment


def past_visit(clinic: Clinic, phone: str = PHONE, *, days_ago: int = 1, local: time = time(10, 0),
               **fields) -> Appointment:  # fmt: skip
    """A visit ``days_ago`` clinic-local days before today at ``local`` clinic time (yesterday at 10:00 by default),
    stored directly (:func:`store_appointment`: booking refuses a time that has passed); unmarked unless ``fields``
    give a status. Attendance can be recorded for it either way, with the real clock.
    """
    day = (appointments.local_time(clinic, utcnow()) - timedelta(days=days_ago)).date()
    at = datetime.combine(day, local, tzinfo=appointments.zone(clinic)).astimezone(UTC)
    return store_appointment(clinic, at, phone=phone, **fields)


def make_triaged(pharmacist: User, *, level: str = "pharmacy", condition: str | None = "eczema", channel: str = "api",
                 contact_id: uuid.UUID | None = None, photo: bytes | None = b"\xff\xd8\xff\xe0 a stored jpeg",
                 consent: bool = False, body_site: str | None = "trunk_limbs"):  # fmt: skip
    """A completed skin consultation of ``pharmacist`` with its recommendation at ``level`` and one stored photo,
    written directly (what the analysis job leaves), committed. Second-opinion tests start from it."""
    from app.models import Consultation, ConsultationImage, Recommendation

    now = utcnow()
    consultation = Consultation(user_id=pharmacist.id, channel=channel, contact_id=contact_id, status="completed",
                                condition=condition, body_site=body_site, queued_at=now, completed_at=now,
                                photo_consent=consent)  # fmt: skip
    db.session.add(consultation)
    db.session.flush()
    db.session.add(Recommendation(consultation_id=consultation.id, level=level, advice="Thusa advice"))
    if photo is not None:
        db.session.add(ConsultationImage(consultation_id=consultation.id, position=0, status="stored", data=photo,
                                         content_type="image/jpeg", width=640, height=480, quality_ok=True))  # fmt: skip
    db.session.commit()
    return consultation
