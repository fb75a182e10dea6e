"""Examples for the OpenAPI document: what Swagger UI shows, what the mock server (``make mock``) answers and what
the Postman collection (``make postman``) sends.

Every request body and every 2xx/4xx answer of ``/api/v1`` has one, checked against its schema by
tests/api/test_openapi_examples.py. Where they live:

- A schema's own example is ``example = {...}`` in its ``class Meta`` (read from that class only, never inherited:
  a subclass with other fields writes its own). The API document carries it as the schema's ``example``.
- A page of items (:func:`app.schemas.common.page_of`) takes its item schema's example.
- Error answers (every 4xx, and 503) share the examples of :data:`ERRORS`, one per status.

The values below are the ones the examples share, so that an appointment's ``clinic_id`` is the clinic's ``id``:
Botswana (+267) and Ghana (+233) numbers, Setswana texts, times in UTC with the clinic-local time beside them
(Gaborone is UTC+2 all year, Accra UTC).
"""

from __future__ import annotations

from typing import Any

GABORONE_CLINIC = "6f1d2c4e-8a3b-4c5d-9e7f-1a2b3c4d5e6f"
ACCRA_CLINIC = "0b7e9d52-3c1a-4f6e-8d2b-5a4c3e2f1d0a"
ADMIN_USER = "d56eedcd-c68f-47a5-a556-e88f108ee077"
STAFF_USER = "839d856a-a73c-45d9-88a6-310eb12678ca"
PHARMACIST_USER = "4c2a7e91-6b3d-4f8a-9c1e-2d5b7a3f6e80"
PATIENT = "1ae3d32d-59e6-448b-9294-ca7f52f7af46"
APPOINTMENT = "ff41de28-17e1-4e61-b320-5eadd4a50a1c"
MESSAGE = "0c5486c3-ab6d-4363-85e0-7605e57382bc"
STOCK_ITEM = "7a8e43c1-4f86-4627-bef4-68e52266092d"
MOVEMENT = "be78caf2-5631-47ac-83c2-fe5f66212c00"
CONSULTATION = "9d3f6a2b-1c4e-4b7d-8a9f-3e2c1b0a9d8e"
IMAGE = "5e8c2b1a-7d4f-4a3e-9b6c-0f1e2d3c4b5a"
ANALYSIS = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
RECOMMENDATION = "c7d8e9f0-a1b2-4c3d-9e4f-5a6b7c8d9e0f"
MEDICATION = "29174baf-f168-4594-ab0e-28a6ebe35a4b"
AUDIT_ENTRY = "a43a72ec-c589-4747-a883-7646d008b35b"
MISSED_APPOINTMENT = "3b9f0e6a-5c2d-4e8b-a17f-6d4c2b8e9a13"
TRACED_PATIENT = "e2c4a6b8-0d1f-4a3c-b5e7-9f1a3c5e7b92"
NOTICE = "8f2a4c6e-1b3d-4e5f-a7b9-c1d3e5f7a9b2"
CLINICIAN_USER = "b3e1f7a2-9c4d-4e6b-8a1f-2d7c5e9b0a46"
REVIEW = "6d2b8f41-3a7c-4e95-b1d0-9c8e7f6a5b34"

BW_STAFF_PHONE = "+26771000001"
BW_PATIENT_PHONE = "+26772000001"
BW_TRACED_PHONE = "+26772000002"
GH_PATIENT_PHONE = "+233241234567"
GH_PHARMACIST_PHONE = "+233241000002"

CREATED = "2026-12-01T06:15:00+00:00"
UPDATED = "2026-12-06T07:42:10+00:00"
# 10:30 in Gaborone on Wednesday 9 December 2026 is 08:30 UTC
APPOINTMENT_UTC = "2026-12-09T08:30:00+00:00"
APPOINTMENT_LOCAL = "2026-12-09T10:30:00+02:00"
REMINDER_UTC = "2026-12-08T08:30:00+00:00"
# The demo reminder, in Setswana, within one SMS segment
REMINDER_TN = (
    "Gakologelwa: o na le peeletso kwa Gaborone Main Clinic ka Laboraro 09/12 ka 10:30. Araba 1 go tlhomamisa."
)

ACCESS_TOKEN = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI4MzlkODU2YSIsInJvbGUiOiJzdGFmZiJ9.5peSUA4X7NP5HiKa"  # noqa: S105 (an example, not a secret)
REFRESH_TOKEN = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI4MzlkODU2YSIsInR5cGUiOiJyZWZyZXNoIn0.chibf7Ham76jqfIL"  # noqa: S105


def _error(code: str, message: str, details: dict | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


# One example per error status, shared by every operation that documents the status.
ERRORS: dict[int, dict[str, Any]] = {
    400: _error("bad_request", "The request could not be read; see details.", {"json": ["Invalid JSON body."]}),
    401: _error("unauthorized", "Authentication required: Missing Authorization Header"),
    403: _error("forbidden", "This needs one of the roles: admin, staff."),
    404: _error("not_found", "No appointment with this id."),
    405: _error("method_not_allowed", "The method is not allowed for the requested URL."),
    409: _error("conflict", "This conflicts with data that already exists or is still in use."),
    413: _error("payload_too_large", "The request body is larger than the limit of this server."),
    415: _error(
        "unsupported_media_type",
        "The photo must be a JPEG, PNG, HEIC/HEIF or WebP image.",
        {"image": ["Unsupported type: image/gif."]},
    ),  # fmt: skip
    422: _error(
        "validation_error",
        "The request has invalid or unknown fields; see details.",
        {
            "json": {
                "patient_phone": ["This is not a valid phone number."],
                "appointment_datetime": ["Not a valid datetime."],
            }
        },
    ),  # fmt: skip
    429: _error("rate_limited", "Too many requests: the limit is 100 per 1 minute. Try again later."),
    503: _error("service_unavailable", "The database is unavailable; try again shortly."),
}


def schema_example(schema: Any) -> Any | None:
    """The example a schema class (or instance) declares itself in ``class Meta``, or None."""
    cls = schema if isinstance(schema, type) else type(schema)
    if "page_item" in vars(cls):  # app.schemas.common.page_of
        return page_example(schema_example(cls.page_item))
    meta = vars(cls).get("Meta")
    return vars(meta).get("example") if meta is not None else None


def page_example(item: Any | None) -> dict[str, Any] | None:
    """A first page holding one ``item``."""
    if item is None:
        return None
    return {"items": [item], "page": 1, "per_page": 20, "total": 1, "pages": 1}


# Shared by every answer that shows the demo staff member's account (UserSchema, TokenPairSchema, ...).
STAFF_ACCOUNT: dict[str, Any] = {
    "id": STAFF_USER, "email": "staff@thusa.example", "name": "Neo Molefe", "phone": BW_STAFF_PHONE, "role": "staff",
    "clinic_id": GABORONE_CLINIC, "pharmacy_name": None, "site_type": None, "language": "tn", "active": True,
    "phone_verified": True, "phone_verified_at": CREATED, "created_at": CREATED, "updated_at": UPDATED,
    "last_login_at": UPDATED, "all_pharmacies": False, "pharmacist_ids": [],
}  # fmt: skip

# Request times far enough ahead that the examples stay bookable (Wednesday 6 March 2030, 10:30 in Gaborone).
BOOKING_LOCAL = "2030-03-06T10:30:00+02:00"
MOVED_LOCAL = "2030-03-08T14:00:00+02:00"

APPOINTMENT_ANSWER: dict[str, Any] = {
    "id": APPOINTMENT, "clinic_id": GABORONE_CLINIC, "patient_id": PATIENT, "patient_phone": BW_PATIENT_PHONE,
    "patient_name": "Mpho Kgosi", "appointment_datetime": APPOINTMENT_UTC, "local_datetime": APPOINTMENT_LOCAL,
    "language": "tn", "status": "scheduled", "reminders_sent": 1, "attended": None, "confirmed_at": None,
    "cancelled_by": None, "external_ref": "GMC-2026-04417", "channel": "sms", "next_reminder_at": REMINDER_UTC,
    "series": None, "series_number": None, "rebooked_from_id": None, "created_at": CREATED, "updated_at": UPDATED,
}  # fmt: skip

# A visit missed on Wednesday 18 November 2026 at 09:00 in Gaborone (07:00 UTC), still to trace on 6 December.
MISSED_APPOINTMENT_ANSWER: dict[str, Any] = {
    **APPOINTMENT_ANSWER, "id": MISSED_APPOINTMENT, "patient_id": TRACED_PATIENT, "patient_phone": BW_TRACED_PHONE,
    "patient_name": "Lesego Tau", "appointment_datetime": "2026-11-18T07:00:00+00:00",
    "local_datetime": "2026-11-18T09:00:00+02:00", "status": "missed", "reminders_sent": 2, "attended": False,
    "external_ref": "GMC-2026-03982", "next_reminder_at": None, "created_at": "2026-11-02T08:05:00+00:00",
    "updated_at": "2026-11-19T00:30:00+00:00",
}  # fmt: skip

# Staff could not reach the patient (the recovery SMS, then a call): the visit stays on the tracing list.
TRACING_NOTE_TN = "Ga a arabe mogala. Re tla leka gape ka Labone 10/12."
TRACING_ENTRY: dict[str, Any] = {
    "appointment": MISSED_APPOINTMENT_ANSWER, "days_since": 18, "overdue": True, "contact_attempts": 2,
    "last_outcome": "unreachable", "last_outcome_at": "2026-12-06T07:42:10+00:00", "last_note": TRACING_NOTE_TN,
}  # fmt: skip

# A closure notice to the patients booked on Friday 11 December 2026, each in their language (one SMS segment).
NOTICE_EN = "Hello, Gaborone Main Clinic is closed on Friday 11/12. Please visit on Thursday 10/12. Thank you."
NOTICE_TN = (
    "Dumela, Gaborone Main Clinic e tla tswalwa ka Labotlhano 11/12. Tsweetswee etela ka Labone 10/12. Re a leboga."
)
NOTICE_REQUEST: dict[str, Any] = {
    "clinic_id": GABORONE_CLINIC, "audience": {"date": "2026-12-11"}, "message_en": NOTICE_EN,
    "message_tn": NOTICE_TN, "dry_run": False,
}  # fmt: skip
NOTICE_ANSWER: dict[str, Any] = {
    "id": NOTICE, "clinic_id": GABORONE_CLINIC, "audience": {"date": "2026-12-11"}, "dry_run": False,
    "recipients": 37, "opted_out": 1, "capped": 0, "segments": {"en": 1, "tn": 1}, "segment_total": 37,
    "created_at": UPDATED, "delivery": {"queued": 37},
}  # fmt: skip

MESSAGE_ANSWER: dict[str, Any] = {
    "id": MESSAGE, "direction": "out", "channel": "sms", "provider": "africastalking",
    "provider_id": "ATXid_5f2c9e0b7a1d4e3f", "address": BW_PATIENT_PHONE, "text": REMINDER_TN, "status": "delivered",
    "kind": "reminder", "encoding": "GSM-7", "segments": 1, "error_code": None, "last_error": None,
    "clinic_id": GABORONE_CLINIC, "send_at": None, "sent_at": "2026-12-06T07:00:02+00:00",
    "received_at": None, "created_at": "2026-12-06T07:00:00+00:00", "updated_at": "2026-12-06T07:00:09+00:00",
}  # fmt: skip

MESSAGE_QUEUED: dict[str, Any] = {
    **MESSAGE_ANSWER, "provider": None, "provider_id": None, "status": "queued", "kind": "api",
    "text": "Dumela Mpho, kliniki e tla tswalwa ka Labotlhano 11/12. Tla ka Labone.", "sent_at": None,
    "created_at": UPDATED, "updated_at": UPDATED,
}  # fmt: skip

MESSAGE_DETAIL: dict[str, Any] = {
    **MESSAGE_ANSWER,
    "events": [
        {"kind": "attempt", "provider": "africastalking", "status": "sent", "raw_status": "Success", "error_code": None,
         "detail": None, "at": "2026-12-06T07:00:02+00:00"},
        {"kind": "status", "provider": "africastalking", "status": "delivered", "raw_status": "Success",
         "error_code": None, "detail": None, "at": "2026-12-06T07:00:09+00:00"},
    ],
}  # fmt: skip

PATIENT_RECORD: dict[str, Any] = {
    "clinic_id": GABORONE_CLINIC, "name": "Mpho Kgosi", "preferred_channel": "sms",
    "notes": "O rata melaetsa ka Setswana.", "created_at": CREATED, "updated_at": UPDATED,
}  # fmt: skip

PATIENT_ANSWER: dict[str, Any] = {
    "id": PATIENT, "phone": BW_PATIENT_PHONE, "language": "tn", "opted_out_at": None, "erased_at": None,
    "created_at": CREATED, "name": "Mpho Kgosi", "preferred_channel": "sms", "notes": "O rata melaetsa ka Setswana.",
    "records": [PATIENT_RECORD],
}  # fmt: skip

STOCK_ANSWER: dict[str, Any] = {
    "id": STOCK_ITEM, "clinic_id": GABORONE_CLINIC, "name": "Malaria RDT kits", "code": "RDT-MAL", "unit": "kits",
    "level": 40, "reorder_level": 40, "low": True, "days_of_stock_left": 8.0, "low_alert_at": UPDATED,
    "created_at": CREATED, "updated_at": UPDATED,
}  # fmt: skip

MOVEMENT_ANSWER: dict[str, Any] = {
    "id": MOVEMENT, "item_id": STOCK_ITEM, "kind": "received", "quantity": 100, "delta": 100, "level_after": 140,
    "batch": "MRDT-2611-B", "expiry_date": "2028-06-30", "user_id": STAFF_USER, "user_name": "Neo Molefe",
    "channel": "api", "at": UPDATED, "note": "Go tswa kwa CMS Gaborone",
}  # fmt: skip


def _counts(appointments: int, reminded: int, confirmed: int, attended: int, missed: int, cancelled: int,
            recovered: int) -> dict[str, Any]:  # fmt: skip
    """One row of the report, its rates rounded as app.services.reports rounds them."""
    rate = round(missed / (attended + missed), 4) if attended + missed else None
    return {"appointments": appointments, "reminded": reminded, "confirmed": confirmed, "attended": attended,
            "missed": missed, "cancelled": cancelled, "no_show_rate": rate, "recovered": recovered,
            "recovery_rate": round(recovered / missed, 4) if missed else None}  # fmt: skip


# November 2026 at the Gaborone clinic: 41 missed visits, 23 of them rebooked within 14 days; the tracing outcomes
# staff recorded for the month's visits (an unreachable patient may count more than once).
ATTENDANCE_REPORT: dict[str, Any] = {
    "clinic_id": GABORONE_CLINIC, "from": "2026-11-01", "to": "2026-11-30",
    "overall": _counts(412, 398, 301, 355, 41, 16, 23),
    "by_language": {"tn": _counts(287, 279, 214, 250, 27, 10, 16), "en": _counts(125, 119, 87, 105, 14, 6, 7)},
    "by_channel": {"sms": _counts(371, 357, 266, 318, 39, 14, 22), "whatsapp": _counts(41, 41, 35, 37, 2, 2, 1)},
    "by_reminders": {"0": _counts(14, 0, 0, 9, 3, 2, 1), "1": _counts(102, 102, 70, 88, 10, 4, 6),
                     "2": _counts(296, 296, 231, 258, 28, 10, 16), "3+": _counts(0, 0, 0, 0, 0, 0, 0)},
    "tracing": {"reached_rebooked": 9, "reached_declined": 3, "unreachable": 14, "transferred_out": 2, "died": 0},
}  # fmt: skip

AUDIT_ANSWER: dict[str, Any] = {
    "id": AUDIT_ENTRY, "actor_id": STAFF_USER, "action": "patient.read", "entity_type": "patient",
    "entity_id": PATIENT, "at": UPDATED, "remote_addr": "196.45.12.8",
    "details": {"appointments": 1, "messages": 2, "view": "one"},
}  # fmt: skip

ANSWERS: dict[str, Any] = {
    "condition": "fungal", "age_group": "y18_to_59", "sex": "female", "pregnant": False, "body_site": "trunk_limbs",
    "duration": "w2_to_6", "itch": True, "pain": False, "spreading": False, "fever": False, "blisters": "none",
    "mole_change": False, "open_sore": "no", "treatment_failed": False, "red_flags": [],
}  # fmt: skip

CONSULTATION_ANSWER: dict[str, Any] = {
    "id": CONSULTATION, "user_id": PHARMACIST_USER, "channel": "api", "status": "completed", **ANSWERS,
    "created_at": "2026-12-06T10:12:00+00:00", "updated_at": "2026-12-06T10:12:07+00:00",
    "completed_at": "2026-12-06T10:12:07+00:00",
}  # fmt: skip

IMAGE_ANSWER: dict[str, Any] = {
    "id": IMAGE, "position": 0, "status": "stored", "content_type": "image/jpeg", "width": 1024, "height": 768,
    "source_format": "JPEG", "source_bytes": 1843200, "stored_bytes": 312480, "ssim": 0.981, "quality_ok": True,
    "quality_problems": [], "error_code": None,
}  # fmt: skip

ANALYSIS_ANSWER: dict[str, Any] = {
    "id": ANALYSIS, "consultation_id": CONSULTATION, "image_id": IMAGE, "status": "completed",
    "model_name": "thusa-skin-default", "model_version": "2026.11", "model_validated": False,
    "top": [["fungal", 0.61], ["eczema", 0.22], ["scabies", 0.07]], "quality": {"blur": 0.12, "brightness": 0.54},
    "timings_ms": {"decode": 38, "model": 112}, "error_code": None, "created_at": "2026-12-06T10:12:01+00:00",
    "updated_at": "2026-12-06T10:12:07+00:00",
}  # fmt: skip

CONSULTATION_DETAIL: dict[str, Any] = {
    **CONSULTATION_ANSWER,
    "images": [IMAGE_ANSWER],
    "analyses": [ANALYSIS_ANSWER],
    "recommendation": {
        "id": RECOMMENDATION, "level": "pharmacy", "rule_ids": ["condition:fungal"],
        "reasons": ["triage_reason_base_pharmacy"], "medication_ids": [MEDICATION],
        "advice": "Pharmacy: the pharmacist supplies and explains the treatment. Clotrimazole 1% cream twice a day "
                  "for 2 weeks after the rash clears; keep the skin dry.",
        "created_at": "2026-12-06T10:12:07+00:00",
    },
    "retake": None,
    # an API consultation: no chat check-in is planned (chat consultations get one 3 or 7 days on)
    "photo_consent": True, "follow_up_at": None, "follow_up_sent_at": None, "outcome": None, "outcome_at": None,
    "reopened_at": None, "reviews": [],
}  # fmt: skip

# A second opinion on that consultation: the Makola Pharmacy pharmacist (Accra, UTC) asks at 10:20; the target for
# a pharmacy-level case is 24 hours. The demo clinician reads it at 11:55 and answers at 12:03.
REVIEW_NOTE = "The patient asks if this is ringworm before buying the cream. Same patch on the other arm last year."
REVIEW_REQUESTED = "2026-12-06T10:20:00+00:00"
REVIEW_ANSWER: dict[str, Any] = {
    "id": REVIEW, "consultation_id": CONSULTATION, "status": "open", "reason": "requested", "rules_level": "pharmacy",
    "level": None, "level_change": None, "condition": "fungal", "note": REVIEW_NOTE, "pharmacy_name": "Makola Pharmacy",
    "requested_at": REVIEW_REQUESTED, "due_at": "2026-12-07T10:20:00+00:00", "waiting_minutes": 0,
    "target_minutes": 1440, "overdue": False, "answered_at": None, "answered_by": None, "diagnosis": None,
    "icd10": None, "advice": None, "confidence": None,
}  # fmt: skip
# A signed link (itsdangerous: the photo and the clinician, a timestamp, a signature), valid 300 seconds.
REVIEW_PHOTO_URL = (
    "/api/v1/review-photos/.eJwNyrkNgDAMAMBdXGMpTpyPbfxKDECF2B2uvgcuOKHHsqokOJ0TWVrg1mFYkqJ6M9YucMD9V21BOaXiNnbkGIpLKLH6"
    "tB5bi_CA9wMOaBe0.axWxHg.FOTcjH4SbBfBCrxZBbl9CttaPpY"
)
REVIEW_READ = {**REVIEW_ANSWER, "waiting_minutes": 95}
REVIEW_DETAIL: dict[str, Any] = {
    **REVIEW_READ,
    "consultation": {**CONSULTATION_DETAIL, "reviews": [REVIEW_READ]},
    "photos": [{"image_id": IMAGE, "position": 0, "url": REVIEW_PHOTO_URL, "expires_in": 300}],
    "history": [],
}  # fmt: skip
# The photo itself: the clean JPEG the analysis job stored (no EXIF, GPS or other metadata).
REVIEW_PHOTO = "(the photo: a JPEG file, its metadata removed)"
REVIEW_ADVICE = ("Agree: ringworm of the body (tinea corporis). Clotrimazole 1% cream twice a day, and for 2 weeks "
                 "after the rash has gone; keep the skin dry and do not share towels. Send her to the clinic if it "
                 "spreads, blisters or is no better in 2 weeks.")  # fmt: skip
REVIEW_ANSWER_REQUEST: dict[str, Any] = {
    "diagnosis": "fungal", "icd10": "B35.4", "level": "pharmacy", "advice": REVIEW_ADVICE, "confidence": "likely",
}  # fmt: skip
REVIEW_ANSWERED: dict[str, Any] = {
    **REVIEW_ANSWER, **REVIEW_ANSWER_REQUEST, "status": "answered", "level_change": "same", "waiting_minutes": 103,
    "answered_at": "2026-12-06T12:03:00+00:00", "answered_by": CLINICIAN_USER, "sent": True,
}  # fmt: skip


def _outcomes(level: str, condition: str, consultations: int, better: int, same: int, worse: int,
              clinic: int) -> dict[str, Any]:  # fmt: skip
    """One row of the outcome report, its rate rounded as app.services.follow_ups rounds it."""
    answered = better + same + worse + clinic
    return {"level": level, "condition": condition, "consultations": consultations, "answered": answered,
            "better": better, "same": same, "worse": worse, "clinic": clinic,
            "worse_rate": round(worse / answered, 3) if answered else None}  # fmt: skip


# The check-ins' answers at the pharmacies a clinician covers: mildest level first, then by condition.
OUTCOME_REPORT: dict[str, Any] = {
    "items": [
        _outcomes("self_care", "insect_bite", 19, 14, 2, 0, 0),
        _outcomes("pharmacy", "eczema", 27, 15, 6, 2, 1),
        _outcomes("pharmacy", "fungal", 48, 30, 7, 3, 1),
        _outcomes("clinic", "impetigo", 9, 3, 1, 1, 3),
        _outcomes("clinic_today", "unknown", 2, 0, 0, 0, 0),
    ],
}  # fmt: skip

MEDICATION_ANSWER: dict[str, Any] = {
    "id": MEDICATION, "code": "clotrimazole-cream", "name": "Clotrimazole 1% cream", "generic_name": "clotrimazole",
    "form": "cream", "strength": "1%", "availability": "otc", "ghana_class": "unknown", "eml_level": None,
    "indications": ["fungal"], "indication_text": "Ringworm and other fungal skin infections",
    "contraindications": {"min_age_months": None, "not_from_months": None, "not_on_open_sore": False,
                          "not_sites": ["eye"], "not_with_conditions": [], "pregnancy": False},
    "pregnancy_ok": True, "min_age_months": None,
    "dose_guidance": "Apply thinly 2-3 times a day, and for 2 weeks after the rash has gone.",
    "sources": ["NICE-CKS-FUNGAL"], "verified": True,
}  # fmt: skip

GUIDELINES: dict[str, Any] = {
    "items": [
        {"code": "condition:animal_bite", "kind": "condition", "conditions": ["animal_bite"], "when": {},
         "title": "Dog, other animal or human bite: wound care, rabies post-exposure treatment and tetanus the same day",
         "level": "urgent", "reasons": ["triage_reason_animal_bite"], "sources": ["TM-BITES", "U-RABIES-PEP"],
         "evidence": "U", "verified": False, "effects": {"advice": ["triage_advice_animal_bite"], "withhold": []}},
    ],
}  # fmt: skip

QUESTIONS: dict[str, Any] = {
    "items": [
        {"id": "itch", "number": 7, "kind": "yes_no", "text": {"en": "Does it itch?", "tn": "A e a baba?"},
         "options": [{"value": True, "label": {"en": "Yes", "tn": "Ee"}},
                     {"value": False, "label": {"en": "No", "tn": "Nnyaa"}}],
         "asked_when": None},
        {"id": "red_flags", "number": 4, "kind": "multi",
         "text": {"en": "Warning signs: does the patient have any of these? Send every number that applies "
                        "(e.g. 2 7), or 0 for none.",
                  "tn": "Matshwao a kotsi: a molwetse o na le nngwe ya tse? Romela dinomoro tsotlhe tse di amegang "
                        "(sk. 2 7), kgotsa 0 fa go se na sepe."},
         "options": [{"value": "numb_patch", "label": {"en": "Numb patch", "tn": "Lebala le le shwele"},
                      "description": {"en": "A pale or red patch that feels numb (touch it lightly)",
                                      "tn": "Lebala le le sweu kgotsa le le hibidu le le sa utlweng sepe (le ame ka "
                                            "bonolo)"}}],
         "asked_when": None, "none_value": []},
    ],
}  # fmt: skip
