"""The Alembic migrations, run through the real ``flask db`` commands on SQLite and on PostgreSQL.

Every revision upgrades and downgrades; the migrated schema matches the models exactly (no drift, types
included); the audit log is append-only in the database itself, whatever SQL reaches it; and revisions that move
data keep it both ways.

PostgreSQL runs in a database of this module's own (``<test database>_migrations``), made here on first use, so the
shared test database that the other tests use is never downgraded under them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy.engine import make_url

from app import create_app
from app.config import PROJECT_ROOT
from app.extensions import db
from app.models import AuditLog, Base
from app.models.base import UTCDateTime, schema_comparison_filter
from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL, reset_postgres_schema

MODEL_TABLES = set(Base.metadata.tables)


def _revisions_base_to_head() -> list[str]:
    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    script = ScriptDirectory.from_config(config)
    assert len(script.get_heads()) == 1, "the migrations have more than one head"
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


REVISIONS = _revisions_base_to_head()


@pytest.fixture(scope="module")
def postgres_migrations_url() -> str:
    """A PostgreSQL database of this module's own, made on first use and kept (each test empties its schema).

    Not dropped afterwards: DROP DATABASE waits for a checkpoint, seconds on a busy server.
    """
    url = make_url(TEST_DATABASE_URL)
    name = f"{url.database}_migrations"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name})
        if exists.first() is None:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path) -> str:
    """An empty database, never migrated: a new SQLite file, or the module's PostgreSQL database emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrations.db'}"
    url = request.getfixturevalue("postgres_migrations_url")
    reset_postgres_schema(url)
    return url


@pytest.fixture
def migrations_app(empty_database_url, tmp_path) -> Iterator[Flask]:
    app = create_app({"THUSA_ENV": "test", "DATABASE_URL": empty_database_url, "REDIS_URL": TEST_REDIS_URL,
                      "INSTANCE_PATH": str(tmp_path / "instance")})  # fmt: skip
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _flask_db(app: Flask, *args: str) -> None:
    result = app.test_cli_runner().invoke(args=["db", *args])
    assert result.exit_code == 0, f"flask db {' '.join(args)} failed:\n{result.output}\n{result.exception!r}"


def _tables(app: Flask) -> set[str]:
    with app.app_context():
        tables = set(sa.inspect(db.engine).get_table_names())
        db.engine.dispose()
    return tables


def _current_revisions(app: Flask) -> set[str]:
    with app.app_context(), db.engine.connect() as connection:
        heads = set(MigrationContext.configure(connection).get_current_heads())
    return heads


def _leftover_routines(app: Flask) -> list[str]:
    """Triggers (SQLite) or trigger functions (PostgreSQL) a downgrade should have removed."""
    with app.app_context(), db.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            query = "SELECT proname FROM pg_proc JOIN pg_namespace n ON n.oid = pronamespace WHERE nspname = 'public'"
        else:
            query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        names = list(connection.execute(sa.text(query)).scalars())
    return names


def test_upgrade_downgrade_base_upgrade_again(migrations_app):
    assert _tables(migrations_app) == set()

    _flask_db(migrations_app, "upgrade")
    assert _tables(migrations_app) == MODEL_TABLES | {"alembic_version"}
    assert _current_revisions(migrations_app) == {REVISIONS[-1]}

    _flask_db(migrations_app, "downgrade", "base")
    assert _tables(migrations_app) <= {"alembic_version"}
    assert _current_revisions(migrations_app) == set()
    assert _leftover_routines(migrations_app) == []

    _flask_db(migrations_app, "upgrade")
    assert _tables(migrations_app) == MODEL_TABLES | {"alembic_version"}
    assert _current_revisions(migrations_app) == {REVISIONS[-1]}


def test_every_revision_upgrades_and_downgrades_one_step_at_a_time(migrations_app):
    for number, revision in enumerate(REVISIONS):
        _flask_db(migrations_app, "upgrade", revision)
        assert _current_revisions(migrations_app) == {revision}
        tables_after_upgrade = _tables(migrations_app)
        _flask_db(migrations_app, "downgrade", REVISIONS[number - 1] if number else "base")
        _flask_db(migrations_app, "upgrade", revision)
        assert _tables(migrations_app) == tables_after_upgrade, f"{revision}: downgrade then upgrade changed tables"
    assert _tables(migrations_app) == MODEL_TABLES | {"alembic_version"}

    for number in reversed(range(len(REVISIONS))):
        _flask_db(migrations_app, "downgrade", REVISIONS[number - 1] if number else "base")
        assert _current_revisions(migrations_app) == ({REVISIONS[number - 1]} if number else set())
    assert _tables(migrations_app) <= {"alembic_version"}


def test_migrated_schema_matches_the_models(migrations_app):
    _flask_db(migrations_app, "upgrade")
    with migrations_app.app_context(), db.engine.connect() as connection:
        include_object = schema_comparison_filter(connection.dialect.name)
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_object": include_object})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def _insert_audit_row(app: Flask) -> str:
    with app.app_context():
        row = AuditLog(action="user.login", entity_type="user", entity_id="42", details={"ok": True})
        db.session.add(row)
        db.session.commit()
        row_id = row.id
        db.session.remove()
    return row_id


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET action = 'tampered'", "DELETE FROM audit_log"],
    ids=["update", "delete"],
)
def test_audit_log_is_append_only_in_the_database(migrations_app, statement):
    _flask_db(migrations_app, "upgrade")
    row_id = _insert_audit_row(migrations_app)

    with migrations_app.app_context():
        with pytest.raises(sa.exc.DBAPIError) as excinfo, db.engine.begin() as connection:
            connection.execute(sa.text(statement))
        assert "append-only" in str(excinfo.value.orig)

        rows = db.session.execute(sa.select(AuditLog.id, AuditLog.action)).all()
        db.session.remove()
        db.engine.dispose()
    assert rows == [(row_id, "user.login")]


def test_audit_rows_can_still_be_added_after_a_refused_change(migrations_app):
    _flask_db(migrations_app, "upgrade")
    first = _insert_audit_row(migrations_app)
    with migrations_app.app_context():
        with pytest.raises(sa.exc.DBAPIError), db.engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM audit_log"))
        db.engine.dispose()
    second = _insert_audit_row(migrations_app)
    with migrations_app.app_context():
        ids = set(db.session.scalars(sa.select(AuditLog.id)))
        db.session.remove()
        db.engine.dispose()
    assert ids == {first, second}


# --- 0006_patient_records: what a clinic records about a patient moves to that clinic's record ------------------

RECORDS = "0006_patient_records"
BEFORE_RECORDS = REVISIONS[REVISIONS.index(RECORDS) - 1]
_ID, _AT = sa.Uuid(), UTCDateTime()
# The tables as the revision before finds them (only the columns these tests write).
CLINICS = sa.table("clinics", *(sa.column(n) for n in ("name", "country", "timezone", "default_language")),
                   sa.column("id", _ID), sa.column("created_at", _AT), sa.column("updated_at", _AT))  # fmt: skip
CONTACTS = sa.table("contacts", sa.column("address"), sa.column("id", _ID), sa.column("created_at", _AT),
                    sa.column("updated_at", _AT))  # fmt: skip
OLD_PATIENTS = sa.table("patients", sa.column("phone"), sa.column("contact_id", _ID), sa.column("name"),
                        sa.column("preferred_channel"), sa.column("id", _ID), sa.column("created_at", _AT),
                        sa.column("updated_at", _AT))  # fmt: skip
APPOINTMENTS = sa.table("appointments", *(sa.column(n) for n in ("status", "reminders_sent", "import_key", "channel")),
                        sa.column("clinic_id", _ID), sa.column("patient_id", _ID), sa.column("id", _ID),
                        sa.column("appointment_datetime", _AT), sa.column("created_at", _AT),
                        sa.column("updated_at", _AT))  # fmt: skip
PATIENT_RECORDS = sa.table("patient_records", sa.column("patient_id", _ID), sa.column("clinic_id", _ID),
                           sa.column("name"), sa.column("preferred_channel"), sa.column("notes"),
                           sa.column("updated_at", _AT))  # fmt: skip
STAMP = datetime(2030, 1, 1, tzinfo=UTC)


def _write(app: Flask, statements: list) -> None:
    with app.app_context():
        with db.engine.begin() as connection:
            for statement in statements:
                connection.execute(statement)
        db.engine.dispose()


def _rows(app: Flask, statement) -> set[tuple]:
    with app.app_context():
        with db.engine.connect() as connection:
            rows = {tuple(row) for row in connection.execute(statement)}
        db.engine.dispose()
    return rows


def _shared_patients(app: Flask) -> dict[str, uuid.UUID]:
    """Before the revision: clinics A and B; Mpho (named, WhatsApp) booked twice at A and once at B, Neo (no name)
    at A only."""
    ids = {name: uuid.uuid4() for name in ("A", "B", "mpho", "neo")}
    stamp = {"created_at": STAMP, "updated_at": STAMP}
    statements = [sa.insert(CLINICS).values(id=ids[clinic], name=f"Clinic {clinic}", country="BW",
                                            timezone="Africa/Gaborone", default_language="tn", **stamp)
                  for clinic in ("A", "B")]  # fmt: skip
    for n, (who, name, channel) in enumerate([("mpho", "Mpho Kgosi", "whatsapp"), ("neo", None, "sms")]):
        contact, phone = uuid.uuid4(), f"+2677100000{n}"
        statements += [sa.insert(CONTACTS).values(id=contact, address=phone, **stamp),
                       sa.insert(OLD_PATIENTS).values(id=ids[who], phone=phone, contact_id=contact, name=name,
                                                      preferred_channel=channel, **stamp)]  # fmt: skip
    for n, (clinic, who) in enumerate([("A", "mpho"), ("A", "mpho"), ("B", "mpho"), ("A", "neo")]):
        statements.append(sa.insert(APPOINTMENTS).values(
            id=uuid.uuid4(), clinic_id=ids[clinic], patient_id=ids[who], appointment_datetime=STAMP,
            status="scheduled", reminders_sent=0, import_key=f"ref:{n}", channel="sms", **stamp))  # fmt: skip
    _write(app, statements)
    return ids


def _records(app: Flask, ids: dict) -> set[tuple]:
    names = {value: key for key, value in ids.items()}
    statement = sa.select(PATIENT_RECORDS.c.patient_id, PATIENT_RECORDS.c.clinic_id, PATIENT_RECORDS.c.name,
                          PATIENT_RECORDS.c.preferred_channel, PATIENT_RECORDS.c.notes)  # fmt: skip
    return {(names[p], names[c], *rest) for p, c, *rest in _rows(app, statement)}


def _old_patients(app: Flask, ids: dict) -> set[tuple]:
    names = {value: key for key, value in ids.items()}
    statement = sa.select(OLD_PATIENTS.c.id, OLD_PATIENTS.c.name, OLD_PATIENTS.c.preferred_channel)
    return {(names[p], *rest) for p, *rest in _rows(app, statement)}


def test_patient_records_migration_round_trip_keeps_every_name_and_channel(migrations_app):
    _flask_db(migrations_app, "upgrade", BEFORE_RECORDS)
    ids = _shared_patients(migrations_app)
    before = _old_patients(migrations_app, ids)

    _flask_db(migrations_app, "upgrade", RECORDS)
    assert _records(migrations_app, ids) == {("mpho", "A", "Mpho Kgosi", "whatsapp", None),
                                             ("mpho", "B", "Mpho Kgosi", "whatsapp", None),
                                             ("neo", "A", None, "sms", None)}  # fmt: skip
    with migrations_app.app_context():
        columns = {c["name"] for c in sa.inspect(db.engine).get_columns("patients")}
        db.engine.dispose()
    assert not {"name", "preferred_channel"} & columns

    _flask_db(migrations_app, "downgrade", BEFORE_RECORDS)
    assert "patient_records" not in _tables(migrations_app)
    assert _old_patients(migrations_app, ids) == before == {("mpho", "Mpho Kgosi", "whatsapp"), ("neo", None, "sms")}

    _flask_db(migrations_app, "upgrade", RECORDS)
    assert len(_records(migrations_app, ids)) == 3


def test_patient_records_downgrade_takes_the_newest_records(migrations_app):
    _flask_db(migrations_app, "upgrade", BEFORE_RECORDS)
    ids = _shared_patients(migrations_app)
    _flask_db(migrations_app, "upgrade", RECORDS)
    # After the revision, clinic B renames Mpho and moves them to SMS; later A clears its name for them.
    changes = [
        ("B", {"name": "Mpho K", "preferred_channel": "sms", "notes": "Mornings"}, 2031),
        ("A", {"name": None}, 2032),
    ]
    _write(migrations_app, [
        sa.update(PATIENT_RECORDS)
        .where(PATIENT_RECORDS.c.patient_id == ids["mpho"], PATIENT_RECORDS.c.clinic_id == ids[clinic])
        .values(updated_at=STAMP.replace(year=year), **values)
        for clinic, values, year in changes
    ])  # fmt: skip

    _flask_db(migrations_app, "downgrade", BEFORE_RECORDS)

    # The name of the newest record that has one; the channel of the newest record (A's, still WhatsApp).
    assert _old_patients(migrations_app, ids) == {("mpho", "Mpho K", "whatsapp"), ("neo", None, "sms")}
