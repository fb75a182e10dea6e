"""Bulk reads and writes of an appointment upload, with no ORM object per row: the one place that knows the backend.

:func:`for_session` picks the session's backend once; everything that differs between PostgreSQL and SQLite
(the form of new ids, how a batch of rows is inserted, how many values one look-up may name) is a method of what
it returns, so the writer has no dialect branch of its own.

- PostgreSQL: binary ``COPY`` straight into the table, several times faster than any INSERT; should a unique
  constraint fail (a concurrent upload of the same rows), the savepoint is rolled back and the rows go through a
  temporary table and ``INSERT ... ON CONFLICT DO NOTHING``. Ids are 16 raw bytes, look-ups one array parameter.
- SQLite: one executemany ``INSERT`` through the driver; ids are ``uuid.UUID``, look-ups chunked ``IN`` lists.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from operator import attrgetter

from sqlalchemy import any_, bindparam, func
from sqlalchemy.dialects import sqlite

from app.extensions import db
from app.models.base import UTCDateTime, new_id, new_id_bytes

CHUNK = 2000  # values per IN (...) query: well under SQLite's bound-parameter limit
SEPARATOR = "\x1f"  # ASCII unit separator: between the values of one array parameter

# Binary COPY sends each value as its length and bytes, no type: a uuid goes as its 16 bytes, dumped by psycopg's
# (C) bytea dumper. Building uuid.UUID objects and dumping them in Python would cost more than the rest of a row.
_PG_TYPES = {"Uuid": "bytea", "String": "text", "UTCDateTime": "timestamptz", "Integer": "int4", "Boolean": "bool"}


def chunks(values: Iterable, size: int = CHUNK) -> Iterator[list]:
    """``values`` in lists of at most ``size``."""
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start : start + size]


def as_uuid(value) -> uuid.UUID:
    """An id in either backend's form (see :meth:`Bulk.as_id`) as a ``uuid.UUID``."""
    return uuid.UUID(bytes=value) if value.__class__ is bytes else value


class Pending:
    """An insert under way (:meth:`Bulk.start`)."""

    def __init__(self, finish: Callable[[], tuple[list[tuple], set]], abort: Callable[[], None] | None = None) -> None:
        self._finish, self._abort = finish, abort

    def finish(self) -> tuple[list[tuple], set]:
        """Wait for the insert: the rows, as a list, and the key values of those a concurrent transaction wrote
        first, which this one skipped (almost always none)."""
        self._abort = None
        return self._finish()

    def abort(self) -> None:
        """Give the insert up (its rows are not stored) after an error elsewhere; nothing once finished."""
        abort, self._abort = self._abort, None
        if abort is not None:
            abort()


class Bulk:
    """The bulk operations of one backend; get one with :func:`for_session`."""

    # Whether the upload may read committed rows on a connection of its own while its transaction writes (see
    # writer.Lookups): not on SQLite, whose in-memory databases are one per connection.
    reads_aside = False

    @staticmethod
    def as_id(value):
        """An id (``uuid.UUID`` or already converted) in the form :meth:`start` writes."""
        return value

    def new_ids(self, count: int) -> list:
        """Keys for new rows (:func:`~app.models.base.new_id`), in ascending order, in the form :meth:`as_id` gives."""
        return sorted((new_id() for _ in range(count)), key=attrgetter("int"))

    def matching(self, column, values: Iterable) -> Iterator[tuple]:
        """WHERE clauses that together match ``column`` against all ``values``, each with the parameters to
        execute its statement with."""
        for chunk in chunks(values):
            yield column.in_(chunk), {}

    def start(self, table, columns: tuple[str, ...], rows: Iterable[tuple], *, key: int) -> Pending:
        """Start inserting ``rows`` (values in ``columns`` order), skipping any that a concurrent transaction wrote
        first (unique constraints). The caller may do other (Python) work while the database stores them, but must
        call :meth:`Pending.finish` (or, on an error, :meth:`Pending.abort`) before its session's next statement.

        ``rows`` may be a generator: PostgreSQL stores each row while the next ones are built, so building them
        adds nothing to the upload's time.
        """
        raise NotImplementedError


class _SqliteBulk(Bulk):
    def __init__(self, dialect) -> None:
        self.dialect = dialect

    def start(self, table, columns: tuple[str, ...], rows: Iterable[tuple], *, key: int) -> Pending:
        rows = list(rows)
        if not rows:
            return Pending(lambda: (rows, set()))
        # The import's transaction holds SQLite's one write lock since its first statement (BEGIN IMMEDIATE): no
        # other transaction can have written these rows since they were looked up, so a plain executemany of
        # the values as SQLAlchemy would bind them does (at twice the speed of SQLAlchemy's own executemany).
        dialect = self.dialect
        statement = sqlite.insert(table).compile(dialect=dialect, column_keys=list(columns))
        order = [columns.index(name) for name in statement.positiontup]
        processors = [(i, _bind(table.c[columns[i]].type, dialect)) for i in order]
        values = [tuple(p(row[i]) if p else row[i] for i, p in processors) for row in rows]
        _driver().executemany(str(statement), values)
        return Pending(lambda: (rows, set()))


class _PostgresBulk(Bulk):
    reads_aside = True

    @staticmethod
    def as_id(value):
        return value.bytes if value.__class__ is uuid.UUID else value

    def new_ids(self, count: int) -> list:
        return new_id_bytes(count)

    def matching(self, column, values: Iterable) -> Iterator[tuple]:
        # One statement, one index probe per value (``= ANY``); the values as one text joined by a separator no
        # value contains (phones are digits, references are printable): psycopg dumps a 100,000-item list
        # parameter item by item, in Python. The text goes as an execution parameter, not as a value bound into
        # the statement: statements outlived their execution here (reached from SQLAlchemy's memoised
        # comparators, not freed by the cycle collector either), and every look-up's text with them: ~3.4 MB held
        # to the end of a 100,000-row upload. An execution parameter is freed with its result.
        values = list(values)
        if values:
            yield (
                column == any_(func.string_to_array(bindparam("values"), SEPARATOR)),
                {"values": SEPARATOR.join(values)},
            )

    def start(self, table, columns: tuple[str, ...], rows: Iterable[tuple], *, key: int) -> Pending:
        # The rows go to a queue that a psycopg thread feeds to the server, and a thread of ours ends the COPY once
        # they are all queued: the caller goes on with Python work while PostgreSQL stores them and then does what
        # ends the statement (the foreign-key triggers: ~20 ms a 10,000 rows), and waits only in Pending.finish.
        from psycopg.copy import QueuedLibpqWriter
        from psycopg.errors import UniqueViolation
        from psycopg.types.string import BytesBinaryDumper

        rows = iter(rows)
        first = next(rows, None)
        if first is None:
            return Pending(lambda: ([], set()))
        statement = _copy_statement(table.name, columns)
        types = [_PG_TYPES[type(table.c[name].type).__name__] for name in columns]
        savepoint = db.session.begin_nested()  # a conflict rolls back to here
        cursor = _driver().cursor()
        # By oid, bytea would get the DB-API Binary wrapper's dumper (Python code); this one is psycopg's C one.
        cursor.adapters.register_dumper(None, BytesBinaryDumper)
        opened = cursor.copy(statement, writer=QueuedLibpqWriter(cursor))
        copy = opened.__enter__()
        sent: list[tuple] = []
        keep, write = sent.append, copy.write_row
        try:
            copy.set_types(types)
            for row in chain((first,), rows):
                keep(row)
                write(row)
        except UniqueViolation as exc:  # reported early: this COPY is lost, its rows still wanted
            sent.extend(rows)
            _close(opened, cursor, savepoint, exc)
            return Pending(lambda: (sent, self._insert_new(table, columns, types, sent, key)))
        except BaseException as exc:
            _close(opened, cursor, savepoint, exc)
            raise
        # The COPY holds the connection's lock (psycopg's cursor.copy) until it ends, so nothing else can use the
        # connection meanwhile: a statement of this thread would wait for the end.
        ended: list[BaseException | None] = []
        ending = threading.Thread(target=_end, args=(opened, ended), name="import-copy-end", daemon=True)
        ending.start()

        def finish() -> tuple[list[tuple], set]:
            ending.join()
            (error,) = ended
            if error is None:
                cursor.close()
                savepoint.commit()
                return sent, set()
            _close(opened, cursor, savepoint, error)
            if not isinstance(error, UniqueViolation):  # a concurrent upload stored some of them first: go on
                raise error
            return sent, self._insert_new(table, columns, types, sent, key)

        def abort() -> None:
            ending.join()
            _close(opened, cursor, savepoint, RuntimeError("abandoned"))

        return Pending(finish, abort)

    def _insert_new(self, table, columns: tuple[str, ...], types: list[str], rows: list[tuple], key: int) -> set:
        """``rows`` through a temporary table and ``INSERT ... ON CONFLICT DO NOTHING``; the keys of those skipped."""
        from psycopg import sql

        names = sql.SQL(", ").join(map(sql.Identifier, columns))
        target, scratch = sql.Identifier(table.name), sql.Identifier("import_rows")
        _driver().execute(sql.SQL("CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA")
                          .format(scratch, names, target))  # fmt: skip
        _copy(_copy_statement("import_rows", columns), types, rows)
        insert = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING RETURNING {}")
        returning = insert.format(target, names, names, scratch, sql.Identifier(columns[key]))
        written = {value.bytes if isinstance(value, uuid.UUID) and isinstance(rows[0][key], bytes) else value
                   for (value,) in _driver().execute(returning)}  # fmt: skip
        _driver().execute(sql.SQL("DROP TABLE {}").format(scratch))
        return {row[key] for row in rows} - written


def _copy_statement(table: str, columns: tuple[str, ...]):
    from psycopg import sql

    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )


def _end(opened, ended: list[BaseException | None]) -> None:
    """End a COPY whose rows are all queued (on a thread of its own); ``ended`` gets the error, or None."""
    try:
        opened.__exit__(None, None, None)
    except BaseException as exc:  # noqa: BLE001 (handed to the thread that waits for it)
        ended.append(exc)
    else:
        ended.append(None)


def _close(opened, cursor, savepoint, exc: BaseException) -> None:
    """End a failed or abandoned COPY (psycopg tells the server it failed) and roll back to its savepoint."""
    with contextlib.suppress(Exception):
        opened.__exit__(type(exc), exc, None)
    with contextlib.suppress(Exception):
        cursor.close()
    savepoint.rollback()


def for_session() -> Bulk:
    """The bulk operations of the session's backend: PostgreSQL's, else SQLite's."""
    dialect = db.session.get_bind().dialect
    return _PostgresBulk() if dialect.name == "postgresql" else _SqliteBulk(dialect)


def _bind(column_type, dialect):
    """SQLAlchemy's bind processor of a column type; memoised for times (a file has few distinct ones)."""
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    if process is None or not isinstance(column_type, UTCDateTime):
        return process
    memo: dict = {}

    def memoised(value):
        if value not in memo:
            memo[value] = process(value)
        return memo[value]

    return memoised


def _driver():
    """The DB-API connection under the session's connection (same transaction)."""
    return db.session.connection().connection.driver_connection


def _copy(statement, types: list[str], rows: Iterable[tuple]) -> None:
    from psycopg.types.string import BytesBinaryDumper

    with _driver().cursor() as cursor, cursor.copy(statement) as copy:
        cursor.adapters.register_dumper(None, BytesBinaryDumper)  # see _PostgresBulk.start
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)
