"""Liveness and readiness, for load balancers and ``make run``: unauthenticated and never rate-limited."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from app.extensions import db, limiter, redis_client
from app.services import message_log

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@limiter.exempt
def healthz():
    """The process is up."""
    return jsonify(status="ok")


@bp.get("/readyz")
@limiter.exempt
def readyz():
    """The database and Redis answer; 503 naming the one that does not. ``detail`` counts the messages a person
    must check (they never make the service unready)."""
    checks, detail = {}, {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
        detail = message_log.needs_attention()
        db.session.rollback()  # read only: end the transaction
    except Exception as exc:  # any driver error means "not ready", never a 500
        db.session.rollback()
        checks.setdefault("database", f"unavailable: {exc.__class__.__name__}")
    try:
        redis_client.client.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"unavailable: {exc.__class__.__name__}"
    ready = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if ready else "unavailable", checks=checks, detail=detail), 200 if ready else 503
