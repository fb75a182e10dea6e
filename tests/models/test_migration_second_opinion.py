"""Migration 0015_second_opinion on rows that exist today: the role CHECK gains clinician (SQLite rebuilds users
without losing the rows that point to it), consultations keep their rows with consent off, and back down.
SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from tests.models.test_migration_triage_v2 import NOW, _recommendation, _run, _user
from tests.models.test_migrations import (  # noqa: F401 (fixtures)
    _flask_db,
    empty_database_url,
    migrations_app,
    postgres_migrations_url,
)

BEFORE, AFTER = "0014_lean_indexes", "0015_second_opinion"


@pytest.fixture
def app(migrations_app):  # noqa: F811 (the fixture imported above: SQLite and PostgreSQL, never migrated)
    return migrations_app


def _counts(app) -> dict[str, int]:
    return {table: _run(app, f"SELECT COUNT(*) FROM {table}")[0][0]  # noqa: S608 - our own table names
            for table in ("users", "chat_link_codes", "consultations", "recommendations", "audit_log")}  # fmt: skip


def test_clinicians_are_allowed_and_every_row_pointing_to_users_stays(app):
    _flask_db(app, "upgrade", BEFORE)
    pharmacist = _user(app, "pharmacist")
    _run(app, "INSERT INTO chat_link_codes (id, user_id, code_hash, created_at, expires_at) "
              "VALUES (:id, :user_id, 'h', :now, :now)", id=uuid.uuid4().hex, user_id=pharmacist, now=NOW)  # fmt: skip
    consultation = _recommendation(app, pharmacist, "urgent")
    with pytest.raises(sa.exc.IntegrityError):
        _user(app, "clinician")
    before = _counts(app)

    _flask_db(app, "upgrade", AFTER)
    assert _counts(app) == before
    assert _run(app, "SELECT photo_consent, follow_up_at, outcome FROM consultations WHERE id = :id",
                id=consultation)[0] in [(False, None, None), (0, None, None)]  # fmt: skip
    clinician = _user(app, "clinician")
    _run(app, "INSERT INTO clinician_pharmacies (id, clinician_id, pharmacist_id, created_at) "
              "VALUES (:id, :c, :p, :now)", id=uuid.uuid4().hex, c=clinician, p=pharmacist, now=NOW)  # fmt: skip
    with pytest.raises(sa.exc.IntegrityError):
        _user(app, "surgeon")
    assert _run(app, "SELECT all_pharmacies FROM users WHERE role = 'clinician'")[0][0] in (False, 0)

    # Down: refused while a clinician exists (no account silently changes role) ...
    refused = app.test_cli_runner().invoke(args=["db", "downgrade", BEFORE])
    assert refused.exit_code != 0 and "clinician account(s) exist" in refused.output
    assert _counts(app) == {**before, "users": before["users"] + 1}  # nothing changed
    _run(app, "UPDATE users SET role = 'admin' WHERE role = 'clinician'")
    _flask_db(app, "downgrade", BEFORE)
    assert _counts(app) == {**before, "users": before["users"] + 1}
    with pytest.raises(sa.exc.IntegrityError):
        _user(app, "clinician")
