"""The REST API under ``/api/v1``: thin blueprints that parse, call a service and shape the answer."""

from __future__ import annotations

from app.api import (
    appointments,
    audit,
    auth,
    clinics,
    docs,
    health,
    message_log,
    notices,
    patients,
    phone_proof,
    pins,
    reports,
    reviews,
    skin,
    stock,
    users,
)

BLUEPRINTS = (
    auth.blp,
    phone_proof.blp,  # proven phone numbers
    users.blp,
    clinics.blp,
    message_log.sms_blp,
    message_log.messages_blp,
    appointments.blp,
    patients.blp,
    reports.blp,
    audit.blp,
    stock.blp,  # clinic stock
    pins.blp,  # staff USSD PINs
    *skin.BLUEPRINTS,  # skin consultations
    notices.blp,  # clinic notices
    *reviews.BLUEPRINTS,  # second opinions and follow-up
)  # fmt: skip


def init_app(app, openapi) -> None:
    """Register the API blueprints on ``openapi`` (documented); the health checks and the Swagger UI page are not
    in the API document."""
    for blueprint in BLUEPRINTS:
        openapi.register_blueprint(blueprint)
    app.register_blueprint(health.bp)
    app.register_blueprint(docs.bp)
