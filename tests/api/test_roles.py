"""Who may call what: every ``/api/v1`` endpoint against every kind of caller, with the exact status expected.

The product spec asks for one table-driven test: each endpoint × {anonymous, viewer, staff, staff of another
clinic, pharmacist, admin, clinician (covering the pharmacist's pharmacy)}. ``TABLE`` below is that table; an issue that adds an endpoint adds its rows here, and
``test_every_api_route_is_in_the_table`` fails until it does.

Each row names a method, a path template, an optional body factory, the expected status per actor, and, when the
row needs data of its own, a setup hook. Path templates and body factories read their values from a context:

* ``home_clinic``, ``other_clinic``: the ids of the two clinics of the ``people`` fixture; the resource under test
  belongs to ``home_clinic`` unless the row says otherwise, so ``other_staff`` is staff of another clinic.
* ``staff_user``, ``staff_email``: the staff member of ``home_clinic``.
* whatever the row's ``setup(people)`` returns.

Every (row, actor) pair is its own test, so each request runs on a fresh database (on PostgreSQL, like
every database test). Bodies are valid, so the status reflects authorization, never validation. Every error
answer must also have the one error shape ``{"error": {"code", "message", "details"}}``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import NamedTuple

import pytest
from sqlalchemy import select

from app.extensions import db
from app.messaging.outbox import queue_outbound, text_to_send
from app.models import Medication, Message, PhoneProofCode, utcnow
from app.services import accounts, appointments, phone_proof, tokens
from tests.conftest import PASSWORD, bearer, make_clinic
from tests.factories import past_visit

ACTORS = ("anonymous", "viewer", "staff", "other_staff", "pharmacist", "admin", "clinician")
NEW_PASSWORD = "a-long-enough-passphrase-9"


class Row(NamedTuple):
    method: str
    path: str
    body: Callable[[dict], dict] | None
    expected: dict[str, int]
    setup: Callable[[dict], dict] | None = None
    token: str = "access"  # which of the actor's tokens to send: "access" or "refresh"
    files: Callable[[dict], dict] | None = None  # a multipart form instead of a JSON body (uploads)


def row(method: str, path: str, body: Callable[[dict], dict] | None, statuses: tuple[int, ...], **options) -> Row:
    """A table row; ``statuses`` are in the order of ``ACTORS``."""
    assert len(statuses) == len(ACTORS), f"{method} {path}: one status per actor, in the order {ACTORS}"
    return Row(method, path, body, dict(zip(ACTORS, statuses, strict=True)), **options)


# --- bodies and setup hooks ---------------------------------------------------------------------------------------


def register_body(ctx: dict) -> dict:
    return {"name": "Kofi Mensah", "email": "kofi@example.org", "phone": "+233241112233", "password": NEW_PASSWORD,
            "pharmacy_name": "Osu Pharmacy"}  # fmt: skip


def login_body(ctx: dict) -> dict:
    return {"email": ctx["staff_email"], "password": PASSWORD}


def reset_body(ctx: dict) -> dict:
    return {"email": ctx["staff_email"]}


def reset_confirm_body(ctx: dict) -> dict:
    return {"email": ctx["staff_email"], "code": ctx["reset_code"], "password": NEW_PASSWORD}


def new_user_body(ctx: dict) -> dict:
    return {"email": "new-viewer@example.org", "password": NEW_PASSWORD, "role": "viewer",
            "clinic_id": ctx["home_clinic"]}  # fmt: skip


def new_clinic_body(ctx: dict) -> dict:
    return {"name": "Mochudi Clinic", "country": "BW", "timezone": "Africa/Gaborone", "default_language": "tn"}


def rename_body(ctx: dict) -> dict:
    return {"name": "Renamed"}


def sent_reset_code(people: dict) -> dict:
    """Ask for a reset code for the staff member and read it back as the SMS sender would (stored masked)."""
    staff = people["users"]["staff"]
    accounts.request_password_reset(None, staff.email)
    text = text_to_send(db.session.scalar(select(Message).where(Message.user_id == staff.id)))
    return {"reset_code": re.search(r"\b\d{6}\b", text).group()}


PHONE_CODE = "246810"


def unproven_phones(people: dict) -> dict:
    """Every account gets a phone of its own, not yet proven (as a self-registered pharmacist's is)."""
    for number, user in enumerate(people["users"].values()):
        user.phone, user.phone_verified_at = f"+2677300{number:04d}", None
    db.session.commit()
    return {}


def sent_phone_codes(people: dict) -> dict:
    """Unproven phones, and the code PHONE_CODE waiting for each account (as POST /auth/phone/verify leaves it)."""
    unproven_phones(people)
    now = utcnow()
    for user in people["users"].values():
        db.session.add(PhoneProofCode(user_id=user.id, phone=user.phone, code_hash=phone_proof._digest(user, PHONE_CODE),
                                      created_at=now, expires_at=now + timedelta(minutes=10)))  # fmt: skip
    db.session.commit()
    return {}


def phone_code_body(ctx: dict) -> dict:
    return {"code": PHONE_CODE}


def sms_body(ctx: dict) -> dict:
    return {"to": "+26772000099", "message": "Dumela! Ke Thusa."}


def scheduled_sms_body(ctx: dict) -> dict:
    return {**sms_body(ctx), "send_at": (utcnow() + timedelta(days=1)).isoformat()}


def home_message(people: dict) -> dict:
    """An SMS the home clinic sent."""
    message = queue_outbound(channel="sms", address="+26772000098", text="Dumela", kind="api",
                             clinic_id=people["home"].id)  # fmt: skip
    db.session.commit()
    return {"home_message": message.id}


def empty_clinic(people: dict) -> dict:
    """A clinic no account belongs to, so an admin may delete it."""
    return {"empty_clinic": make_clinic("Mochudi Clinic").id}


APPOINTMENT_AT = "2031-03-04T09:00:00+02:00"


def appointment_body(ctx: dict) -> dict:
    """A booking naming the home clinic (so other_staff is refused, and admins have their clinic)."""
    return {"patient_phone": "+26772000097", "appointment_datetime": APPOINTMENT_AT,
            "clinic_id": str(ctx["home_clinic"])}  # fmt: skip


def appointment_change_body(ctx: dict) -> dict:
    return {"language": "en"}


def attendance_body(ctx: dict) -> dict:
    return {"attended": True}


def patient_record_body(ctx: dict) -> dict:
    return {"notes": "Prefers mornings", "clinic_id": str(ctx["home_clinic"])}  # admins name it; staff their own


def bulk_body(ctx: dict) -> dict:
    """One cancel of the home clinic's appointment: the request is 200 for every writer (results per item)."""
    return {"items": [{"action": "cancel", "id": str(ctx["home_appointment"])}]}


def upload_form(ctx: dict) -> dict:
    csv = b"patient_phone,appointment_datetime,language\n+26772000096,2031-03-04 09:00,tn\n"
    return {"file": (io.BytesIO(csv), "appointments.csv")}


def home_appointment(people: dict) -> dict:
    """An appointment (and so a patient) at the home clinic."""
    appointment = appointments.create(None, people["home"], patient_phone="+26772000095",
                                      appointment_datetime=datetime.fromisoformat(APPOINTMENT_AT))  # fmt: skip
    db.session.commit()
    return {"home_appointment": appointment.id, "home_patient": appointment.patient_id}


def home_past_visit(people: dict) -> dict:
    """A visit of the home clinic yesterday, unmarked: attendance can be recorded only once a visit took place."""
    return {"home_past_visit": past_visit(people["home"], "+26772000093").id}


def home_missed(people: dict) -> dict:
    """A missed visit at the home clinic (to trace)."""
    appointment = appointments.create(None, people["home"], patient_phone="+26772000094",
                                      appointment_datetime=datetime.fromisoformat(APPOINTMENT_AT))  # fmt: skip
    appointment.status = "missed"
    db.session.commit()
    return {"home_missed": appointment.id}


def notice_body(ctx: dict) -> dict:
    return {
        "clinic_id": str(ctx["home_clinic"]),
        "audience": {"status": "scheduled"},
        "message_en": "Closed Friday.",
        "message_tn": "Go tswetswe ka Labotlhano.",
        "dry_run": True,
    }


def home_notice(people: dict) -> dict:
    from app.models import ClinicNotice

    notice = ClinicNotice(clinic_id=people["home"].id, audience={"status": "scheduled"}, message_en="a",
                          message_tn="b", recipients=0, segments={"en": 1, "tn": 1}, segment_total=0)  # fmt: skip
    db.session.add(notice)
    db.session.commit()
    return {"home_notice": notice.id}


def tracing_body(ctx: dict) -> dict:
    return {"outcome": "unreachable", "note": "No answer"}


# Skin consultations.
def photo_form(ctx: dict) -> dict:
    from tests.photos import encode, sample_photo

    return {"image": (io.BytesIO(encode(sample_photo(640, 480), "JPEG", quality=90)), "skin.jpg")}


def skin_answers_body(ctx: dict) -> dict:
    return {"itch": True, "condition": "eczema"}


def pharmacist_consultation(people: dict) -> dict:
    """A consultation (with a queued analysis) of the pharmacist, from a real photo."""
    from app.security import Actor
    from app.services import consultations
    from tests.photos import encode, sample_photo

    pharmacist = people["users"]["pharmacist"]
    actor = Actor(pharmacist.id, "pharmacist", None, "127.0.0.1")
    consultation, _, analysis = consultations.create_from_upload(
        actor, encode(sample_photo(640, 480), "JPEG", quality=90), {}, with_analysis=True
    )
    return {"home_consultation": consultation.id, "home_analysis": analysis.id}


def a_medication(people: dict) -> dict:
    from app.services import formulary

    formulary.seed()
    db.session.commit()
    return {"a_medication": db.session.scalar(select(Medication.id).limit(1))}


# Second opinions.
def triaged_consultation(people: dict) -> dict:
    """A triaged consultation of the pharmacist (one stored photo), and an open review of it."""
    from app.services import reviews
    from tests.factories import make_triaged

    consultation = make_triaged(people["users"]["pharmacist"], level="urgent")
    review, _ = reviews.open_review(consultation, reason="level", by=None)
    db.session.commit()
    return {"home_consultation": consultation.id, "home_review": review.id}


def untouched_consultation(people: dict) -> dict:
    """A triaged consultation of the pharmacist with no review yet."""
    from tests.factories import make_triaged

    return {"home_consultation": make_triaged(people["users"]["pharmacist"]).id}


def review_request_body(ctx: dict) -> dict:
    return {"note": "Patient also has a cough."}


def review_answer_body(ctx: dict) -> dict:
    return {"diagnosis": "impetigo", "icd10": "L01.0", "level": "clinic", "advice": "Needs antibiotics.",
            "confidence": "confirmed"}  # fmt: skip


def photo_link(people: dict) -> dict:
    """A signed photo link the clinician got from GET /reviews/{id}: the link itself is the authorisation."""
    from app.models import ConsultationImage
    from app.security import Actor
    from app.services import reviews

    ctx = triaged_consultation(people)
    clinician = people["users"]["clinician"]
    image = db.session.scalar(select(ConsultationImage).where(ConsultationImage.consultation_id ==
                                                              ctx["home_consultation"]))  # fmt: skip
    url = reviews.photo_url(Actor(clinician.id, "clinician", None, None), image)
    return {"photo_token": url.rsplit("/", 1)[1]}


# Clinic stock and USSD PINs.
def stock_body(ctx: dict) -> dict:
    """A new item naming the home clinic (so other_staff is refused, and admins have their clinic)."""
    return {"name": "ORS sachets", "unit": "sachets", "reorder_level": 50, "level": 200,
            "clinic_id": str(ctx["home_clinic"])}  # fmt: skip


def home_stock(people: dict) -> dict:
    """A stock item of the home clinic."""
    from app.models import StockItem

    item = StockItem(clinic_id=people["home"].id, name="Gloves", unit="pairs", level=40, reorder_level=10)
    db.session.add(item)
    db.session.commit()
    return {"home_item": item.id}


def stock_alert_body(ctx: dict) -> dict:
    return {"item_id": str(ctx["home_item"]), "note": "Order placed; delivery on Friday."}


def reorder_body(ctx: dict) -> dict:
    return {"reorder_level": 5}


def movement_body(ctx: dict) -> dict:
    return {"kind": "received", "quantity": 20, "batch": "B-17"}


def pin_body(ctx: dict) -> dict:
    return {"pin": "2580"}


# --- the table ----------------------------------------------------------------------------------------------------

# fmt: off
TABLE = [
    # Statuses are in the order of ACTORS: anonymous, viewer, staff, other_staff, pharmacist, admin, clinician.
    #   method    path                                   body                (anon viewer staff other pharm admin clin)
    row("GET",    "/api/v1/openapi.json",                None,               (200, 200, 200, 200, 200, 200, 200)),
    row("GET",    "/api/v1/docs",                        None,               (200, 200, 200, 200, 200, 200, 200)),
    row("GET",    "/api/v1/docs/init.js",                None,               (200, 200, 200, 200, 200, 200, 200)),
    row("GET",    "/api/v1/docs/assets/{asset}",         None,               (200, 200, 200, 200, 200, 200, 200),
        setup=lambda _people: {"asset": "swagger-ui.css"}),

    row("POST",   "/api/v1/auth/register",               register_body,      (201, 201, 201, 201, 201, 201, 201)),
    row("POST",   "/api/v1/auth/login",                  login_body,         (200, 200, 200, 200, 200, 200, 200)),
    # A refresh endpoint refuses access tokens, and takes each actor's own refresh token.
    row("POST",   "/api/v1/auth/refresh",                None,               (401, 401, 401, 401, 401, 401, 401)),
    row("POST",   "/api/v1/auth/refresh",                None,               (401, 200, 200, 200, 200, 200, 200),
        token="refresh"),
    row("POST",   "/api/v1/auth/logout",                 None,               (401, 204, 204, 204, 204, 204, 204)),
    row("GET",    "/api/v1/auth/me",                     None,               (401, 200, 200, 200, 200, 200, 200)),
    row("POST",   "/api/v1/auth/password-reset",         reset_body,         (202, 202, 202, 202, 202, 202, 202)),
    row("POST",   "/api/v1/auth/password-reset/confirm", reset_confirm_body, (204, 204, 204, 204, 204, 204, 204),
        setup=sent_reset_code),
    row("POST",   "/api/v1/auth/phone/verify",           None,               (401, 202, 202, 202, 202, 202, 202),
        setup=unproven_phones),
    row("POST",   "/api/v1/auth/phone/confirm",          phone_code_body,    (401, 200, 200, 200, 200, 200, 200),
        setup=sent_phone_codes),

    row("GET",    "/api/v1/users",                       None,               (401, 403, 403, 403, 403, 200, 403)),
    row("POST",   "/api/v1/users",                       new_user_body,      (401, 403, 403, 403, 403, 201, 403)),
    row("GET",    "/api/v1/users/{staff_user}",          None,               (401, 403, 403, 403, 403, 200, 403)),
    row("PATCH",  "/api/v1/users/{staff_user}",          rename_body,        (401, 403, 403, 403, 403, 200, 403)),
    row("DELETE", "/api/v1/users/{staff_user}",          None,               (401, 403, 403, 403, 403, 200, 403)),

    # Staff and viewers list only their own clinic, which other_staff has too.
    row("GET",    "/api/v1/clinics",                     None,               (401, 200, 200, 200, 403, 200, 403)),
    row("POST",   "/api/v1/clinics",                     new_clinic_body,    (401, 403, 403, 403, 403, 201, 403)),
    row("GET",    "/api/v1/clinics/{home_clinic}",       None,               (401, 200, 200, 403, 403, 200, 403)),
    row("PATCH",  "/api/v1/clinics/{home_clinic}",       rename_body,        (401, 403, 403, 403, 403, 200, 403)),
    row("DELETE", "/api/v1/clinics/{empty_clinic}",      None,               (401, 403, 403, 403, 403, 204, 403),
        setup=empty_clinic),
    # Accounts still belong to the home clinic.
    row("DELETE", "/api/v1/clinics/{home_clinic}",       None,               (401, 403, 403, 403, 403, 409, 403)),

    # Staff send for their own clinic (other_staff for theirs); viewers and pharmacists send nothing.
    row("POST",   "/api/v1/sms/send",                    sms_body,           (401, 403, 202, 202, 403, 202, 403)),
    row("POST",   "/api/v1/sms/schedule",                scheduled_sms_body, (401, 403, 202, 202, 403, 202, 403)),
    row("GET",    "/api/v1/sms/status/{home_message}",   None,               (401, 200, 200, 403, 403, 200, 403),
        setup=home_message),
    row("GET",    "/api/v1/sms/queue",                   None,               (401, 200, 200, 200, 403, 200, 403)),
    row("GET",    "/api/v1/messages",                    None,               (401, 200, 200, 200, 403, 200, 403)),

    # Appointments: staff write for their own clinic, viewers read theirs; other_staff list and book their own
    # (the booking body names the home clinic, so theirs is refused).
    row("GET",    "/api/v1/appointments",                None,               (401, 200, 200, 200, 403, 200, 403)),
    row("POST",   "/api/v1/appointments",                appointment_body,   (401, 403, 201, 403, 403, 201, 403)),
    row("GET",    "/api/v1/appointments/upcoming",       None,               (401, 200, 200, 200, 403, 200, 403)),
    row("POST",   "/api/v1/appointments/bulk",           bulk_body,          (401, 403, 200, 200, 403, 200, 403),
        setup=home_appointment),
    row("POST",   "/api/v1/appointments/upload",         None,               (401, 403, 200, 200, 403, 200, 403),
        files=upload_form),
    row("POST",   "/api/v1/appointments/upload?clinic_id={home_clinic}", None, (401, 403, 200, 403, 403, 200, 403),
        files=upload_form),
    row("GET",    "/api/v1/appointments/{home_appointment}", None,           (401, 200, 200, 403, 403, 200, 403),
        setup=home_appointment),
    row("PUT",    "/api/v1/appointments/{home_appointment}", appointment_change_body, (401, 403, 200, 403, 403, 200, 403),
        setup=home_appointment),
    row("DELETE", "/api/v1/appointments/{home_appointment}", None,           (401, 403, 200, 403, 403, 200, 403),
        setup=home_appointment),
    row("PUT",    "/api/v1/appointments/{home_past_visit}/attendance", attendance_body,
        (401, 403, 200, 403, 403, 200, 403), setup=home_past_visit),
    row("GET",    "/api/v1/appointments/tracing",        None,               (401, 200, 200, 200, 403, 200, 403)),
    row("POST",   "/api/v1/appointments/{home_missed}/tracing", tracing_body, (401, 403, 201, 403, 403, 201, 403),
        setup=home_missed),

    # Notices name the home clinic: other_staff is refused; viewers read only.
    row("POST",   "/api/v1/notices",                     notice_body,        (401, 403, 201, 403, 403, 201, 403)),
    row("GET",    "/api/v1/notices/{home_notice}",       None,               (401, 200, 200, 403, 403, 200, 403),
        setup=home_notice),

    row("GET",    "/api/v1/reports/attendance",          None,               (401, 200, 200, 200, 403, 200, 403)),

    row("GET",    "/api/v1/patients",                    None,               (401, 200, 200, 200, 403, 200, 403)),
    row("GET",    "/api/v1/patients/{home_patient}",     None,               (401, 200, 200, 403, 403, 200, 403),
        setup=home_appointment),
    # Only the home clinic's record; other_staff have no appointment with the patient.
    row("PATCH",  "/api/v1/patients/{home_patient}",     patient_record_body, (401, 403, 200, 403, 403, 200, 403),
        setup=home_appointment),
    row("DELETE", "/api/v1/patients/{home_patient}",     None,               (401, 403, 403, 403, 403, 204, 403),
        setup=home_appointment),

    row("GET",    "/api/v1/audit",                       None,               (401, 403, 403, 403, 403, 200, 403)),

    # Skin consultations: pharmacists their own, admins all; formulary and guidelines for every role.
    row("POST",   "/api/v1/auth/chat-link",              None,               (401, 403, 403, 403, 201, 201, 403)),
    row("GET",    "/api/v1/consultations",               None,               (401, 403, 403, 403, 200, 200, 403)),
    row("POST",   "/api/v1/consultations",               None,               (401, 403, 403, 403, 201, 201, 403),
        files=photo_form),
    row("GET",    "/api/v1/consultations/{home_consultation}", None,         (401, 403, 403, 403, 200, 200, 403),
        setup=pharmacist_consultation),
    row("PUT",    "/api/v1/consultations/{home_consultation}", skin_answers_body, (401, 403, 403, 403, 200, 200, 403),
        setup=pharmacist_consultation),
    row("POST",   "/api/v1/analysis/skin",               None,               (401, 403, 403, 403, 202, 202, 403),
        files=photo_form),
    row("GET",    "/api/v1/analysis/{home_analysis}",    None,               (401, 403, 403, 403, 200, 200, 403),
        setup=pharmacist_consultation),
    row("GET",    "/api/v1/medications",                 None,               (401, 200, 200, 200, 200, 200, 200)),
    row("GET",    "/api/v1/medications/search?q=cream",  None,               (401, 200, 200, 200, 200, 200, 200)),
    row("GET",    "/api/v1/medications/{a_medication}",  None,               (401, 200, 200, 200, 200, 200, 200),
        setup=a_medication),
    row("GET",    "/api/v1/triage/guidelines",           None,               (401, 200, 200, 200, 200, 200, 200)),
    row("GET",    "/api/v1/triage/questions",            None,               (401, 200, 200, 200, 200, 200, 200)),
    # Second opinions: pharmacists ask about their own; clinicians (covering the pharmacy) and admins answer.
    row("POST",   "/api/v1/consultations/{home_consultation}/review-request", review_request_body,
        (401, 403, 403, 403, 201, 201, 403), setup=untouched_consultation),
    row("GET",    "/api/v1/reviews",                     None,               (401, 403, 403, 403, 403, 200, 200)),
    row("GET",    "/api/v1/reviews/{home_review}",       None,               (401, 403, 403, 403, 403, 200, 200),
        setup=triaged_consultation),
    row("POST",   "/api/v1/reviews/{home_review}/answer", review_answer_body, (401, 403, 403, 403, 403, 200, 200),
        setup=triaged_consultation),
    # A photo link is its own authorisation (signed, expiring): anyone holding it may read the photo.
    row("GET",    "/api/v1/review-photos/{photo_token}", None,               (200, 200, 200, 200, 200, 200, 200),
        setup=photo_link),
    row("GET",    "/api/v1/reports/outcomes",            None,               (401, 403, 403, 403, 200, 200, 200)),
    # Clinic stock: staff write their own clinic's, viewers read it; the PIN is the admin's or one's own.
    row("GET",    "/api/v1/stock",                       None,               (401, 200, 200, 200, 403, 200, 403)),
    row("POST",   "/api/v1/stock",                       stock_body,         (401, 403, 201, 403, 403, 201, 403)),
    row("GET",    "/api/v1/stock/low",                   None,               (401, 200, 200, 200, 403, 200, 403)),
    row("POST",   "/api/v1/stock/alert",                 stock_alert_body,   (401, 403, 202, 403, 403, 202, 403),
        setup=home_stock),
    row("GET",    "/api/v1/stock/{home_item}",           None,               (401, 200, 200, 403, 403, 200, 403),
        setup=home_stock),
    row("PUT",    "/api/v1/stock/{home_item}",           reorder_body,       (401, 403, 200, 403, 403, 200, 403),
        setup=home_stock),
    row("GET",    "/api/v1/stock/{home_item}/movements", None,               (401, 200, 200, 403, 403, 200, 403),
        setup=home_stock),
    row("POST",   "/api/v1/stock/{home_item}/movements", movement_body,      (401, 403, 201, 403, 403, 201, 403),
        setup=home_stock),
    row("PUT",    "/api/v1/users/{staff_user}/pin",      pin_body,           (401, 403, 204, 403, 403, 204, 403)),
]
# fmt: on


# --- the tests ----------------------------------------------------------------------------------------------------


def _case_id(table_row: Row, actor: str) -> str:
    suffix = "" if table_row.token == "access" else f" ({table_row.token} token)"
    return f"{table_row.method} {table_row.path}{suffix} as {actor}"


CASES = [pytest.param(r, actor, id=_case_id(r, actor)) for r in TABLE for actor in ACTORS]


def _context(people: dict) -> dict:
    staff = people["users"]["staff"]
    return {"home_clinic": people["home"].id, "other_clinic": people["other"].id, "staff_user": staff.id,
            "staff_email": staff.email}  # fmt: skip


def _headers(people: dict, actor: str, token: str) -> dict:
    if actor == "anonymous":
        return {}
    if token == "refresh":
        return bearer(tokens.issue_pair(people["users"][actor])["refresh_token"])
    return bearer(people["tokens"][actor])


def assert_error_shape(response) -> None:
    body = response.get_json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str), body
    assert isinstance(body["error"]["details"], dict), body


@pytest.mark.parametrize(("table_row", "actor"), CASES)
def test_status_for_each_endpoint_and_actor(client, people, table_row: Row, actor: str):
    ctx = _context(people) | (table_row.setup(people) if table_row.setup else {})
    response = client.open(
        table_row.path.format(**ctx),
        method=table_row.method,
        headers=_headers(people, actor, table_row.token),
        json=table_row.body(ctx) if table_row.body else None,
        data=table_row.files(ctx) if table_row.files else None,
    )
    assert response.status_code == table_row.expected[actor], response.get_data(as_text=True)[:500]
    if response.status_code >= 400:
        assert_error_shape(response)


def _shape(path: str) -> str:
    """``/users/<uuid:user_id>`` and ``/users/{staff_user}`` both become ``/users/{}`` (a query string is dropped)."""
    return re.sub(r"<[^>]*>|\{[^}]*\}", "{}", path.split("?")[0])


def test_every_api_route_is_in_the_table(app):
    routes = {
        (method, _shape(rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    table = {(r.method, _shape(r.path)) for r in TABLE}
    assert sorted(routes - table) == [], "endpoints missing from TABLE"
    assert sorted(table - routes) == [], "TABLE rows for endpoints that do not exist"
