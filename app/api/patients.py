"""``/api/v1/patients``: search by phone, one patient's record, a clinic's own record of them, erasure (admins)."""

from __future__ import annotations

from uuid import UUID

from app.api.common import Blueprint, documents, requires
from app.schemas.common import page_body
from app.schemas.patients import (
    PatientDetailSchema,
    PatientPageSchema,
    PatientQuerySchema,
    PatientRecordUpdateSchema,
    PatientSchema,
)
from app.security import current_actor
from app.services import patients

blp = Blueprint("patients", __name__, url_prefix="/api/v1/patients",
                description="Patients (staff and viewers: those with a current appointment at their clinic, and "
                            "only their clinic's record of them).")  # fmt: skip

READERS = ("admin", "staff", "viewer")
WRITERS = ("admin", "staff")


@blp.get("")
@requires(blp, *READERS)
@blp.arguments(PatientQuerySchema, location="query")
@blp.response(200, PatientPageSchema)
def search(query):
    """Search patients.

    Newest first; ``phone`` matches exactly (E.164, or a national number of your clinic's country). Staff and
    viewers find only patients with a current (not cancelled) appointment at their clinic, and see only their
    clinic's record of them (name, preferred_channel, notes); admins find everyone, with every clinic's record.
    """
    return page_body(patients.search(current_actor(), **query))


@blp.get("/<uuid:patient_id>")
@requires(blp, *READERS)
@blp.response(200, PatientDetailSchema)
@documents(blp, 404)
def detail(patient_id: UUID):
    """One patient.

    With their appointments and newest messages (staff and viewers: only their clinic's, and only their clinic's
    record). 403 for staff and viewers whose clinic has no current (not cancelled) appointment with the patient,
    as for any other clinic's data: cancelling the only appointment ends the access.
    """
    return patients.detail(current_actor(), patient_id)


@blp.patch("/<uuid:patient_id>")
@requires(blp, *WRITERS)
@blp.arguments(PatientRecordUpdateSchema)
@blp.response(200, PatientSchema)
@documents(blp, 404, 409)
def update_record(data, patient_id: UUID):
    """Change your clinic's record of a patient.

    Name, preferred_channel (where your clinic's reminders go) and notes; only the fields sent, and only your
    clinic's record: other clinics' records stay as they are. Staff: while the clinic has a current appointment
    with the patient (else 403). Admins name the clinic in ``clinic_id``; 404 when it has no record of the patient.
    409: the patient's personal data was erased.
    """
    return patients.update_record(current_actor(), patient_id, data)


@blp.delete("/<uuid:patient_id>")
@requires(blp, "admin")
@blp.response(204)
@documents(blp, 404)
def erase(patient_id: UUID):
    """Erase a patient's personal data.

    Number, every clinic's name and notes for them, and message texts go; anonymous counts stay for the reports.
    Idempotent: erasing an erased patient again is a 204 that changes nothing; 404 only for an id that never
    existed.
    """
    patients.erase(current_actor(), patient_id)
