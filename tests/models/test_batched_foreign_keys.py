"""The six foreign keys PostgreSQL checks once per statement (migration 0016_batched_foreign_keys), attacked.

Every way an orphan could get in is tried: one bad row among many, binary COPY, an update to a missing parent, a
parent deleted or re-keyed under its children, and the races between a child's writer and a parent's deleter on two
real connections (each with a lock timeout, so a broken lock fails the test instead of hanging it). SQLite keeps
real foreign keys; the first case runs there too.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from app.extensions import db
from app.models import Base

TABLES = Base.metadata.tables
AT = datetime(2030, 1, 1, 10, tzinfo=UTC)
# (constraint, child table, child column, parent table, on delete)
RELATIONS = [
    ("fk_patients_contact_id_contacts", "patients", "contact_id", "contacts", "RESTRICT"),
    ("fk_patient_records_patient_id_patients", "patient_records", "patient_id", "patients", "RESTRICT"),
    ("fk_patient_records_clinic_id_clinics", "patient_records", "clinic_id", "clinics", "RESTRICT"),
    ("fk_appointments_patient_id_patients", "appointments", "patient_id", "patients", "RESTRICT"),
    ("fk_appointments_clinic_id_clinics", "appointments", "clinic_id", "clinics", "RESTRICT"),
    ("fk_appointments_created_by_users", "appointments", "created_by", "users", "SET NULL"),
]
RESTRICTED = [relation for relation in RELATIONS if relation[4] == "RESTRICT"]
IDS = [relation[0] for relation in RELATIONS]
# A blocked statement gives up after this instead of hanging the run; waits for a block poll up to it.
LOCK_TIMEOUT = "20s"
WAIT_SECONDS = 20


def _parent(connection: sa.Connection, table: str, **values) -> uuid.UUID:
    """A new row of a parent table (contacts, clinics, users, patients: a patient gets a contact of its own)."""
    tag = uuid.uuid4().hex[:12]
    defaults = {
        "contacts": lambda: {"address": f"+267{int(tag, 16) % 10**8:08d}"},
        "clinics": lambda: {"name": f"Clinic {tag}", "country": "BW", "timezone": "Africa/Gaborone",
                            "default_language": "tn"},
        "users": lambda: {"email": f"{tag}@example.org", "name": "Admin", "password_hash": "x", "role": "admin",
                          "language": "en", "active": True},
        "patients": lambda: {"phone": f"+267{int(tag, 16) % 10**8:08d}",
                             "contact_id": values.get("contact_id") or _parent(connection, "contacts")},
    }[table]()  # fmt: skip
    row = {"id": uuid.uuid4(), **defaults, **values}
    connection.execute(sa.insert(TABLES[table]).values(row))
    return row["id"]


def _world(connection: sa.Connection) -> dict[str, uuid.UUID]:
    """One committed parent of each table, all referenced by one patient record and one appointment."""
    ids = {table: _parent(connection, table) for table in ("clinics", "users", "patients")}
    ids["contacts"] = connection.execute(sa.select(TABLES["patients"].c.contact_id)).scalar_one()
    connection.execute(sa.insert(TABLES["patient_records"]).values(_child("patient_records", ids)))
    connection.execute(sa.insert(TABLES["appointments"]).values(_child("appointments", ids)))
    return ids


def _child(table: str, ids: dict[str, uuid.UUID], **values) -> dict:
    """A row of a child table whose parents are ``ids``' (then ``values``)."""
    tag = uuid.uuid4().hex[:12]
    base = {
        "patients": lambda: {"phone": f"+267{int(tag, 16) % 10**8:08d}", "contact_id": ids["contacts"]},
        "patient_records": lambda: {"patient_id": ids["patients"], "clinic_id": ids["clinics"],
                                    "preferred_channel": "sms"},
        "appointments": lambda: {"patient_id": ids["patients"], "clinic_id": ids["clinics"],
                                 "created_by": ids["users"], "appointment_datetime": AT, "status": "scheduled",
                                 "reminders_sent": 0, "import_key": f"ref:{tag}", "channel": "sms"},
    }[table]()  # fmt: skip
    return {"id": uuid.uuid4(), **base, **values}


def _count(connection: sa.Connection, table: str, *where) -> int:
    return connection.execute(sa.select(sa.func.count()).select_from(TABLES[table]).where(*where)).scalar_one()


def _violation(excinfo: pytest.ExceptionInfo, constraint: str) -> psycopg.Error:
    """The driver's error under an IntegrityError, checked to be the named constraint's foreign-key violation."""
    orig = excinfo.value.orig
    assert isinstance(orig, psycopg.errors.ForeignKeyViolation), repr(orig)
    assert orig.diag.constraint_name == constraint
    return orig


@pytest.fixture
def engine(database_url) -> Iterator[sa.Engine]:
    """An engine of this test's own (no pool: every connection closed at the end), READ COMMITTED."""
    engine = sa.create_engine(database_url, poolclass=NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def ids(engine) -> dict[str, uuid.UUID]:
    with engine.begin() as connection:
        return _world(connection)


# --- writing children ---------------------------------------------------------------------------------------------


@pytest.mark.both_backends
def test_a_child_naming_a_missing_parent_is_refused_on_both_backends(app):
    with db.engine.connect() as connection:
        ids = {table: _parent(connection, table) for table in ("clinics", "users", "patients")}
        connection.commit()
        with pytest.raises(sa.exc.IntegrityError):
            row = _child("appointments", ids, clinic_id=uuid.uuid4())
            connection.execute(sa.insert(TABLES["appointments"]).values(row))
        connection.rollback()
        assert _count(connection, "appointments") == 0


@pytest.mark.postgres_only
@pytest.mark.parametrize("relation", RELATIONS, ids=IDS)
def test_a_child_naming_a_missing_parent_is_refused(engine, ids, relation):
    constraint, child, column, parent, _ = relation
    missing = uuid.uuid4()
    with engine.connect() as connection, pytest.raises(sa.exc.IntegrityError) as excinfo:
        connection.execute(sa.insert(TABLES[child]).values(_child(child, ids, **{column: missing})))

    orig = _violation(excinfo, constraint)
    assert str(orig).startswith(f'insert or update on table "{child}" violates foreign key constraint "{constraint}"')
    assert orig.diag.message_detail == f'Key ({column})=({missing}) is not present in table "{parent}".'
    assert (orig.diag.table_name, orig.diag.column_name) == (child, column)
    with engine.connect() as connection:
        assert _count(connection, child, TABLES[child].c[column] == missing) == 0


@pytest.mark.postgres_only
@pytest.mark.parametrize("relation", RELATIONS, ids=IDS)
def test_one_bad_row_among_many_in_one_statement_writes_none_of_them(engine, ids, relation):
    constraint, child, column, parent, _ = relation
    with engine.begin() as connection:
        # Fresh parents for each good row, so a child table's unique keys (one patient per contact) hold.
        rows = [_child(child, ids, **{column: _parent(connection, parent)}) for _ in range(20)]
    rows.insert(13, _child(child, ids, **{column: uuid.uuid4()}))
    with engine.connect() as connection:
        before = _count(connection, child)
        with pytest.raises(sa.exc.IntegrityError) as excinfo:
            connection.execute(sa.insert(TABLES[child]).values(rows))
        _violation(excinfo, constraint)
        connection.rollback()
        assert _count(connection, child) == before


@pytest.mark.postgres_only
def test_an_appointment_with_no_creator_needs_no_user(engine, ids):
    with engine.begin() as connection:
        connection.execute(sa.insert(TABLES["appointments"]).values(_child("appointments", ids, created_by=None)))
        assert _count(connection, "appointments", TABLES["appointments"].c.created_by.is_(None)) == 1


@pytest.mark.postgres_only
def test_binary_copy_of_an_appointment_at_a_missing_clinic_is_refused(engine, ids):
    columns = ["id", "clinic_id", "patient_id", "appointment_datetime", "status", "reminders_sent", "import_key",
               "channel", "created_at", "updated_at"]  # fmt: skip
    types = ["uuid", "uuid", "uuid", "timestamptz", "varchar", "int4", "varchar", "varchar", "timestamptz",
             "timestamptz"]  # fmt: skip
    missing = uuid.uuid4()
    rows = [(uuid.uuid4(), clinic, ids["patients"], AT, "scheduled", 0, f"ref:{n}", "sms", AT, AT)
            for n, clinic in enumerate([ids["clinics"]] * 500 + [missing] + [ids["clinics"]] * 500)]  # fmt: skip
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
        statement = f"COPY appointments ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
        with (
            pytest.raises(psycopg.errors.ForeignKeyViolation) as excinfo,
            driver.cursor() as cursor,
            cursor.copy(statement) as copy,
        ):
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)
        assert excinfo.value.diag.constraint_name == "fk_appointments_clinic_id_clinics"
        assert str(missing) in excinfo.value.diag.message_detail
        driver.rollback()
        assert _count(connection, "appointments") == 1  # the world's own


@pytest.mark.postgres_only
@pytest.mark.parametrize("relation", RELATIONS, ids=IDS)
def test_moving_a_child_to_a_missing_parent_is_refused_and_to_an_existing_one_works(engine, ids, relation):
    constraint, child, column, parent, _ = relation
    table = TABLES[child]
    with engine.begin() as connection:
        child_id = connection.execute(sa.select(table.c.id).limit(1)).scalar_one()
        other = _parent(connection, parent)

    missing = uuid.uuid4()
    with engine.connect() as connection, pytest.raises(sa.exc.IntegrityError) as excinfo:
        connection.execute(sa.update(table).where(table.c.id == child_id).values({column: missing}))
    assert _violation(excinfo, constraint).diag.message_detail == (
        f'Key ({column})=({missing}) is not present in table "{parent}".'
    )

    with engine.begin() as connection:
        connection.execute(sa.update(table).where(table.c.id == child_id).values({column: other}))
        assert connection.execute(sa.select(table.c[column]).where(table.c.id == child_id)).scalar_one() == other


@pytest.mark.postgres_only
def test_an_update_that_leaves_the_column_alone_is_not_checked_again(engine, ids):
    """Only a changed value is checked, as PostgreSQL's own foreign keys do: updates of other columns (a reminder
    sent) cost nothing. Shown with an orphan made behind the triggers' back, which such an update leaves be."""
    appointments, clinics = TABLES["appointments"], TABLES["clinics"]
    with engine.begin() as connection:
        connection.exec_driver_sql("SET LOCAL session_replication_role = replica")  # skips every trigger
        connection.execute(sa.delete(clinics).where(clinics.c.id == ids["clinics"]))
    with engine.begin() as connection:
        connection.execute(sa.update(appointments).values(reminders_sent=1, clinic_id=ids["clinics"]))
        assert _count(connection, "appointments", appointments.c.reminders_sent == 1) == 1


# --- changing parents ---------------------------------------------------------------------------------------------


def _spare(engine: sa.Engine, parent: str) -> uuid.UUID:
    with engine.begin() as connection:
        return _parent(connection, parent)


def _referenced_by(engine: sa.Engine, ids: dict[str, uuid.UUID], relation: tuple) -> uuid.UUID:
    """A new parent row that one new child row of ``relation`` (and nothing else) references."""
    _constraint, child, column, parent, _ = relation
    with engine.begin() as connection:
        referenced = _parent(connection, parent)
        connection.execute(sa.insert(TABLES[child]).values(_child(child, ids, **{column: referenced})))
    return referenced


@pytest.mark.postgres_only
@pytest.mark.parametrize("relation", RESTRICTED, ids=[relation[0] for relation in RESTRICTED])
def test_deleting_a_referenced_parent_is_refused_and_keeps_it(engine, ids, relation):
    constraint, child, _column, parent, _ = relation
    table = TABLES[parent]
    referenced = _referenced_by(engine, ids, relation)
    with engine.connect() as connection, pytest.raises(sa.exc.IntegrityError) as excinfo:
        connection.execute(sa.delete(table).where(table.c.id.in_([referenced, _spare(engine, parent)])))

    orig = _violation(excinfo, constraint)
    assert str(orig).startswith(f'update or delete on table "{parent}" violates foreign key constraint '
                                f'"{constraint}" on table "{child}"')  # fmt: skip
    assert orig.diag.message_detail == f'Key (id)=({referenced}) is still referenced from table "{child}".'
    with engine.connect() as connection:
        assert _count(connection, parent, table.c.id == referenced) == 1


@pytest.mark.postgres_only
@pytest.mark.parametrize("parent", ["contacts", "patients", "clinics", "users"])
def test_deleting_unreferenced_parents_works(engine, ids, parent):
    table = TABLES[parent]
    with engine.begin() as connection:
        spare = [_parent(connection, parent) for _ in range(3)]
        connection.execute(sa.delete(table).where(table.c.id.in_(spare)))
        assert _count(connection, parent, table.c.id.in_(spare)) == 0
        assert _count(connection, parent, table.c.id == ids[parent]) == 1


@pytest.mark.postgres_only
def test_deleting_a_user_clears_the_appointments_they_created(engine, ids):
    users, appointments = TABLES["users"], TABLES["appointments"]
    with engine.begin() as connection:
        other = _parent(connection, "users")
        connection.execute(sa.insert(appointments).values(_child("appointments", ids, created_by=other)))
        connection.execute(sa.delete(users).where(users.c.id == ids["users"]))
    with engine.connect() as connection:
        creators = connection.execute(sa.select(appointments.c.created_by)).scalars().all()
    assert sorted(creators, key=str) == sorted([None, other], key=str)


@pytest.mark.postgres_only
@pytest.mark.parametrize("relation", RELATIONS, ids=IDS)
def test_changing_a_referenced_parents_id_is_refused(engine, ids, relation):
    constraint, child, _column, parent, _ = relation
    table = TABLES[parent]
    referenced = _referenced_by(engine, ids, relation)
    with engine.connect() as connection, pytest.raises(sa.exc.IntegrityError) as excinfo:
        connection.execute(sa.update(table).where(table.c.id == referenced).values(id=uuid.uuid4()))
    assert _violation(excinfo, constraint).diag.message_detail == (
        f'Key (id)=({referenced}) is still referenced from table "{child}".'
    )
    with engine.connect() as connection:
        assert _count(connection, parent, table.c.id == referenced) == 1


@pytest.mark.postgres_only
def test_changing_an_unreferenced_parents_id_works(engine, ids):
    clinics = TABLES["clinics"]
    with engine.begin() as connection:
        spare, new = _parent(connection, "clinics"), uuid.uuid4()
        connection.execute(sa.update(clinics).where(clinics.c.id == spare).values(id=new))
        assert _count(connection, "clinics", clinics.c.id == new) == 1


# --- races between two connections -------------------------------------------------------------------------------


def _session(engine: sa.Engine, isolation: str = "READ COMMITTED") -> sa.Connection:
    connection = engine.connect().execution_options(isolation_level=isolation)
    connection.exec_driver_sql(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
    connection.commit()
    return connection


def _pid(connection: sa.Connection) -> int:
    return connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()


def _in_thread(work: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    """Run ``work`` in a thread; what it raises lands in the returned list."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - handed to the test, which asserts on it
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, raised


def _wait_until_blocked(engine: sa.Engine, pid: int, thread: threading.Thread) -> None:
    """Poll until backend ``pid`` waits on a lock; fail if its thread ended first or it never blocks."""
    with engine.connect() as watcher:
        for _ in range(WAIT_SECONDS * 20):
            blockers = watcher.execute(sa.text("SELECT pg_blocking_pids(:pid)"), {"pid": pid}).scalar_one()
            if blockers:
                return
            assert thread.is_alive(), "the statement ran to its end instead of waiting for the other transaction"
            thread.join(0.05)
    pytest.fail(f"backend {pid} never waited on a lock")


def _appointments_at(engine: sa.Engine, clinic: uuid.UUID) -> int:
    with engine.connect() as connection:
        return _count(connection, "appointments", TABLES["appointments"].c.clinic_id == clinic)


@pytest.mark.postgres_only
def test_a_clinic_deleted_while_an_appointment_for_it_is_uncommitted_waits_and_is_refused(engine, ids):
    """(a) T1 books at C and has not committed; T2's delete of C waits for T1, then sees the booking."""
    clinics = TABLES["clinics"]
    with engine.begin() as connection:
        clinic = _parent(connection, "clinics")
    booker, deleter = _session(engine), _session(engine)
    deleter_pid = _pid(deleter)
    try:
        booker.execute(sa.insert(TABLES["appointments"]).values(_child("appointments", ids, clinic_id=clinic)))

        def delete() -> None:
            deleter.execute(sa.delete(clinics).where(clinics.c.id == clinic))
            deleter.commit()

        thread, raised = _in_thread(delete)
        _wait_until_blocked(engine, deleter_pid, thread)
        booker.commit()
        thread.join(WAIT_SECONDS)
        assert not thread.is_alive()
        assert len(raised) == 1 and isinstance(raised[0], sa.exc.IntegrityError), raised
        assert raised[0].orig.diag.constraint_name == "fk_appointments_clinic_id_clinics"
    finally:
        booker.close()
        deleter.close()
    with engine.connect() as connection:
        assert _count(connection, "clinics", clinics.c.id == clinic) == 1
    assert _appointments_at(engine, clinic) == 1


@pytest.mark.postgres_only
def test_an_appointment_booked_while_its_clinics_delete_is_uncommitted_waits_and_is_refused(engine, ids):
    """(b) T2 deleted C (unreferenced) and has not committed; T1's booking at C waits, then finds C gone."""
    clinics = TABLES["clinics"]
    with engine.begin() as connection:
        clinic = _parent(connection, "clinics")
    booker, deleter = _session(engine), _session(engine)
    booker_pid = _pid(booker)
    try:
        deleter.execute(sa.delete(clinics).where(clinics.c.id == clinic))

        def book() -> None:
            booker.execute(sa.insert(TABLES["appointments"]).values(_child("appointments", ids, clinic_id=clinic)))
            booker.commit()

        thread, raised = _in_thread(book)
        _wait_until_blocked(engine, booker_pid, thread)
        deleter.commit()
        thread.join(WAIT_SECONDS)
        assert not thread.is_alive()
        assert len(raised) == 1 and isinstance(raised[0], sa.exc.IntegrityError), raised
        assert raised[0].orig.diag.constraint_name == "fk_appointments_clinic_id_clinics"
    finally:
        booker.close()
        deleter.close()
    with engine.connect() as connection:
        assert _count(connection, "clinics", clinics.c.id == clinic) == 0
    assert _appointments_at(engine, clinic) == 0


@pytest.mark.postgres_only
@pytest.mark.parametrize("isolation", ["REPEATABLE READ", "SERIALIZABLE"])
def test_a_snapshot_transaction_cannot_book_at_a_clinic_deleted_after_its_snapshot(engine, ids, isolation):
    """(c) The booker's snapshot still shows C, deleted and committed since: the booking fails all the same."""
    clinics = TABLES["clinics"]
    with engine.begin() as connection:
        clinic = _parent(connection, "clinics")
    booker, deleter = _session(engine, isolation), _session(engine)
    try:
        assert booker.execute(sa.select(clinics.c.id).where(clinics.c.id == clinic)).scalar_one() == clinic
        deleter.execute(sa.delete(clinics).where(clinics.c.id == clinic))
        deleter.commit()
        with pytest.raises(sa.exc.DBAPIError) as excinfo:
            booker.execute(sa.insert(TABLES["appointments"]).values(_child("appointments", ids, clinic_id=clinic)))
            booker.commit()
        # A serialization failure (the lock found the row deleted), as PostgreSQL's own check gives.
        assert excinfo.value.orig.sqlstate in {"40001", "23503"}, repr(excinfo.value.orig)
        booker.rollback()
    finally:
        booker.close()
        deleter.close()
    assert _appointments_at(engine, clinic) == 0


@pytest.mark.postgres_only
@pytest.mark.parametrize("isolation", ["REPEATABLE READ", "SERIALIZABLE"])
def test_a_snapshot_transaction_can_book_at_a_clinic_that_is_there(engine, ids, isolation):
    with engine.connect().execution_options(isolation_level=isolation) as connection:
        connection.execute(sa.insert(TABLES["appointments"]).values(_child("appointments", ids)))
        connection.commit()
    assert _appointments_at(engine, ids["clinics"]) == 2


@pytest.mark.postgres_only
@pytest.mark.parametrize("isolation", ["REPEATABLE READ", "SERIALIZABLE"])
@pytest.mark.parametrize("referenced", [True, False], ids=["referenced", "unreferenced"])
def test_a_parent_delete_outside_read_committed_is_refused_clearly(engine, ids, isolation, referenced):
    """(d) A snapshot could miss a child committed after it: the delete is refused, whatever it would find."""
    clinics = TABLES["clinics"]
    with engine.begin() as connection:
        clinic = ids["clinics"] if referenced else _parent(connection, "clinics")
    with engine.connect().execution_options(isolation_level=isolation) as connection:
        with pytest.raises(sa.exc.NotSupportedError) as excinfo:
            connection.execute(sa.delete(clinics).where(clinics.c.id == clinic))
        assert "needs READ COMMITTED" in str(excinfo.value.orig)
        connection.rollback()
        # A delete that matches no row has nothing to check.
        connection.execute(sa.delete(clinics).where(clinics.c.id == uuid.uuid4()))
        connection.commit()
    with engine.connect() as connection:
        assert _count(connection, "clinics", clinics.c.id == clinic) == 1
