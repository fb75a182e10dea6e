"""Migration 0010_triage_v2 on rows that exist today: levels kept (never weakened), the new level allowed and
checked, pharmacists made "pharmacy" sites; and back down without losing a referral. SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from app.extensions import db
from tests.models.test_migrations import (  # noqa: F401 (fixtures)
    _flask_db,
    empty_database_url,
    migrations_app,
    postgres_migrations_url,
)

BEFORE, AFTER = "0005_consultations", "0010_triage_v2"
NOW = "2026-12-01 10:00:00+00:00"


def _run(app, statement: str, **params):
    with app.app_context(), db.engine.begin() as connection:
        result = connection.execute(sa.text(statement), params)
        rows = result.all() if result.returns_rows else None
    with app.app_context():
        db.engine.dispose()
    return rows


def _user(app, role: str) -> str:
    user_id = uuid.uuid4().hex
    _run(app, "INSERT INTO users (id, email, name, password_hash, role, pharmacy_name, language, active, "
              "pin_failed_attempts, created_at, updated_at) VALUES (:id, :email, 'x', 'x', :role, :pharmacy, 'en', "
              "true, 0, :now, :now)", id=user_id, email=f"{user_id}@example.org", role=role,
         pharmacy="Osu Pharmacy" if role == "pharmacist" else None, now=NOW)  # fmt: skip
    return user_id


def _recommendation(app, user_id: str, level: str) -> str:
    consultation_id, recommendation_id = uuid.uuid4().hex, uuid.uuid4().hex
    _run(app, "INSERT INTO consultations (id, user_id, channel, status, created_at, updated_at) "
              "VALUES (:id, :user_id, 'api', 'completed', :now, :now)", id=consultation_id, user_id=user_id, now=NOW)  # fmt: skip
    _run(app, "INSERT INTO recommendations (id, consultation_id, level, rule_ids, reasons, medication_ids, advice, "
              "created_at) VALUES (:id, :consultation_id, :level, '[]', '[]', '[]', '', :now)",
         id=recommendation_id, consultation_id=consultation_id, level=level, now=NOW)  # fmt: skip
    return consultation_id


def _levels(app) -> list[str]:
    return sorted(row[0] for row in _run(app, "SELECT level FROM recommendations"))


@pytest.fixture
def app(migrations_app):  # noqa: F811 (the fixture imported above: SQLite and PostgreSQL, never migrated)
    return migrations_app


def test_todays_rows_keep_their_level_and_pharmacists_become_pharmacies(app):
    _flask_db(app, "upgrade", BEFORE)
    pharmacist, admin = _user(app, "pharmacist"), _user(app, "admin")
    link_code = uuid.uuid4().hex  # a child of users (ON DELETE CASCADE): must survive both ways
    _run(app, "INSERT INTO chat_link_codes (id, user_id, code_hash, created_at, expires_at) "
              "VALUES (:id, :user_id, 'h', :now, :now)", id=link_code, user_id=pharmacist, now=NOW)  # fmt: skip
    for level in ("self_care", "pharmacy", "clinic", "urgent"):
        _recommendation(app, pharmacist, level)

    _flask_db(app, "upgrade", AFTER)
    # "urgent" meant "same day or emergency": it stays urgent (the stricter reading), never becomes clinic_today.
    assert _levels(app) == ["clinic", "pharmacy", "self_care", "urgent"]
    sites = {uuid.UUID(str(key)).hex: value for key, value in _run(app, "SELECT id, site_type FROM users")}
    assert sites == {pharmacist: "pharmacy", admin: None}
    assert _run(app, "SELECT red_flags FROM consultations WHERE red_flags IS NOT NULL") == []  # not asked
    assert _run(app, "SELECT COUNT(*) FROM chat_link_codes")[0][0] == 1

    # The new level is allowed; anything else is still refused by the database.
    today = _recommendation(app, pharmacist, "clinic_today")
    with pytest.raises(sa.exc.IntegrityError):
        _recommendation(app, pharmacist, "soon")
    if app.config["DATABASE_URL"].startswith("postgresql"):
        with pytest.raises(sa.exc.IntegrityError):
            _run(app, "UPDATE users SET site_type = 'kiosk' WHERE role = 'pharmacist'")

    # Down again: the same-day referral becomes the old "urgent" (which covered the same day), none is lost.
    _flask_db(app, "downgrade", BEFORE)
    assert _levels(app) == ["clinic", "pharmacy", "self_care", "urgent", "urgent"]
    assert _run(app, "SELECT COUNT(*) FROM recommendations r JOIN consultations c ON c.id = r.consultation_id "
                     "WHERE r.level = 'urgent'")[0][0] == 2  # fmt: skip
    assert today
    assert _run(app, "SELECT COUNT(*) FROM chat_link_codes")[0][0] == 1
    assert _run(app, "SELECT COUNT(*) FROM consultations")[0][0] == 6  # 4 + clinic_today + the refused "soon"
