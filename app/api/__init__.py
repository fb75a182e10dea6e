"""The REST API under ``/api/v1``: thin blueprints that parse, call a service and shape the answer."""

from __future__ import annotations

from app.api import auth, clinics, health, messaging, users

BLUEPRINTS = (auth.blp, users.blp, clinics.blp, messaging.sms_blp, messaging.messages_blp)


def init_app(app, openapi) -> None:
    """Register the API blueprints on ``openapi`` (documented) and the health checks (not in the API document)."""
    for blueprint in BLUEPRINTS:
        openapi.register_blueprint(blueprint)
    app.register_blueprint(health.bp)
