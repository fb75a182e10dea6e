"""``/api/v1/clinics``: admins manage clinics; staff and viewers read their own."""

from __future__ import annotations

from uuid import UUID

from flask.views import MethodView

from app.api.common import Blueprint, documents, requires
from app.schemas.clinics import (
    ClinicCreateSchema,
    ClinicPageSchema,
    ClinicQuerySchema,
    ClinicSchema,
    ClinicUpdateSchema,
)
from app.schemas.common import page_body
from app.security import current_actor
from app.services import clinics

blp = Blueprint("clinics", __name__, url_prefix="/api/v1/clinics", description="Clinics.")


@blp.route("")
class Clinics(MethodView):
    @requires(blp, "admin", "staff", "viewer")
    @blp.arguments(ClinicQuerySchema, location="query")
    @blp.response(200, ClinicPageSchema)
    def get(self, query):
        """List clinics: all for admins, their own for staff and viewers."""
        return page_body(clinics.list_clinics(current_actor(), **query))

    @requires(blp, "admin")
    @blp.arguments(ClinicCreateSchema)
    @blp.response(201, ClinicSchema)
    def post(self, data):
        """Create a clinic."""
        return clinics.create_clinic(current_actor(), data)


@blp.route("/<uuid:clinic_id>")
class ClinicById(MethodView):
    @requires(blp, "admin", "staff", "viewer")
    @blp.response(200, ClinicSchema)
    @documents(blp, 404)
    def get(self, clinic_id: UUID):
        """One clinic (staff and viewers: only their own)."""
        return clinics.get_clinic(current_actor(), clinic_id)

    @requires(blp, "admin")
    @blp.arguments(ClinicUpdateSchema)
    @blp.response(200, ClinicSchema)
    @documents(blp, 404)
    def patch(self, data, clinic_id: UUID):
        """Change some fields."""
        return clinics.update_clinic(current_actor(), clinic_id, data)

    @requires(blp, "admin")
    @blp.response(204)
    @documents(blp, 404, 409)
    def delete(self, clinic_id: UUID):
        """Delete a clinic no account belongs to any more."""
        clinics.delete_clinic(current_actor(), clinic_id)
