"""``/api/v1/patients``: search by phone, one patient's record, erasure (admins)."""

from __future__ import annotations

from uuid import UUID

from app.api.common import Blueprint, documents, requires
from app.schemas.common import page_body
from app.schemas.patients import PatientDetailSchema, PatientPageSchema, PatientQuerySchema
from app.security import current_actor
from app.services import patients

blp = Blueprint("patients", __name__, url_prefix="/api/v1/patients",
                description="Patients (staff and viewers: those with an appointment at their clinic).")  # fmt: skip

READERS = ("admin", "staff", "viewer")


@blp.get("")
@requires(blp, *READERS)
@blp.arguments(PatientQuerySchema, location="query")
@blp.response(200, PatientPageSchema)
def search(query):
    """Search patients.

    Newest first; ``phone`` matches exactly (E.164, or a national number of your clinic's country).
    """
    return page_body(patients.search(current_actor(), **query))


@blp.get("/<uuid:patient_id>")
@requires(blp, *READERS)
@blp.response(200, PatientDetailSchema)
@documents(blp, 404)
def detail(patient_id: UUID):
    """One patient.

    With their appointments and newest messages (staff and viewers: only their clinic's).
    """
    patient, appointments, messages = patients.detail(current_actor(), patient_id)
    return {**{name: getattr(patient, name) for name in ("id", "phone", "name", "language", "preferred_channel",
                                                         "opted_out_at", "erased_at", "created_at")},
            "appointments": appointments, "messages": messages}  # fmt: skip


@blp.delete("/<uuid:patient_id>")
@requires(blp, "admin")
@blp.response(204)
@documents(blp, 404)
def erase(patient_id: UUID):
    """Erase a patient's personal data.

    Name, number and message texts go; anonymous counts stay for the reports. Idempotent: erasing an erased
    patient again is a 204 that changes nothing; 404 only for an id that never existed.
    """
    patients.erase(current_actor(), patient_id)
