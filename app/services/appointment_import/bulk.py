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

import os
import uuid
from collections.abc import Iterable, Iterator
from itertools import chain
from operator import attrgetter

from sqlalchemy import any_, bindparam, func
from sqlalchemy.dialects import sqlite

from app.extensions import db
from app.models.base import UTCDateTime

CHUNK = 2000  # values per IN (...) query: well under SQLite's bound-parameter limit
SEPARATOR = "\x1f"  # ASCII unit separator: between the values of one array parameter

# Binary COPY sends each value as its length and bytes, no type: a uuid goes as its 16 bytes, dumped by psycopg's
# (C) bytea dumper. Building uuid.UUID objects and dumping them in Python would cost more than the rest of a row.
_PG_TYPES = {"Uuid": "bytea", "String": "text", "UTCDateTime": "timestamptz", "Integer": "int4", "Boolean": "bool"}
_VERSION_4 = bytes(b & 0x0F | 0x40 for b in range(256))
_VARIANT = bytes(b & 0x3F | 0x80 for b in range(256))


def chunks(values: Iterable, size: int = CHUNK) -> Iterator[list]:
    """``values`` in lists of at most ``size``."""
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start : start + size]


def as_uuid(value) -> uuid.UUID:
    """An id in either backend's form (see :meth:`Bulk.as_id`) as a ``uuid.UUID``."""
    return uuid.UUID(bytes=value) if value.__class__ is bytes else value


class Bulk:
    """The bulk operations of one backend; get one with :func:`for_session`."""

    # Whether the upload may read committed rows on a connection of its own while its transaction writes (see
    # writer.Lookups): not on SQLite, whose in-memory databases are one per connection.
    reads_aside = False

    @staticmethod
    def as_id(value):
        """An id (``uuid.UUID`` or already converted) in the form :meth:`insert` writes."""
        return value

    def new_ids(self, count: int) -> list:
        """Random version-4 UUIDs for new rows, in ascending order, in the form :meth:`as_id` gives."""
        return sorted((uuid.uuid4() for _ in range(count)), key=attrgetter("int"))

    def matching(self, column, values: Iterable) -> Iterator:
        """WHERE clauses that together match ``column`` against all ``values``."""
        for chunk in chunks(values):
            yield column.in_(chunk)

    def insert(self, table, columns: tuple[str, ...], rows: Iterable[tuple], *, key: int) -> tuple[list[tuple], set]:
        """Insert ``rows`` (values in ``columns`` order), skipping any that a concurrent transaction wrote first
        (unique constraints).

        ``rows`` may be a generator: PostgreSQL stores each row while the next ones are built, so building them
        adds nothing to the upload's time.

        Returns:
            The rows, as a list, and the ``key``-th values of those a concurrent transaction wrote first, which
            this one skipped (almost always none).
        """
        raise NotImplementedError


class _SqliteBulk(Bulk):
    def __init__(self, dialect) -> None:
        self.dialect = dialect

    def insert(self, table, columns: tuple[str, ...], rows: Iterable[tuple], *, key: int) -> tuple[list[tuple], set]:
        rows = list(rows)
        if not rows:
            return rows, set()
        # The import's transaction holds SQLite's one write lock since its first statement (BEGIN IMMEDIATE): no
        # other transaction can have written these rows since they were looked up, so a plain executemany of
        # the values as SQLAlchemy would bind them does (at twice the speed of SQLAlchemy's own executemany).
        dialect = self.dialect
        statement = sqlite.insert(table).compile(dialect=dialect, column_keys=list(columns))
        order = [columns.index(name) for name in statement.positiontup]
        processors = [(i, _bind(table.c[columns[i]].type, dialect)) for i in order]
        values = [tuple(p(row[i]) if p else row[i] for i, p in processors) for row in rows]
        _driver().executemany(str(statement), values)
        return rows, set()


class _PostgresBulk(Bulk):
    reads_aside = True

    @staticmethod
    def as_id(value):
        return value.bytes if value.__class__ is uuid.UUID else value

    def new_ids(self, count: int) -> list:
        raw = bytearray(os.urandom(16 * count))
        raw[6::16] = raw[6::16].translate(_VERSION_4)
        raw[8::16] = raw[8::16].translate(_VARIANT)
        raw = bytes(raw)
        return sorted([raw[i : i + 16] for i in range(0, 16 * count, 16)])

    def matching(self, column, values: Iterable) -> Iterator:
        # One statement, one index probe per value (``= ANY``); the values as one text joined by a separator no
        # value contains (phones are digits, references are printable): psycopg dumps a 100,000-item list
        # parameter item by item, in Python.
        values = list(values)
        if values:
            yield column == any_(func.string_to_array(bindparam(None, SEPARATOR.join(values)), SEPARATOR))

    def insert(self, table, columns: tuple[str, ...], rows: Iterable[tuple], *, key: int) -> tuple[list[tuple], set]:
        rows = iter(rows)
        first = next(rows, None)
        if first is None:
            return [], set()
        rows, sent = chain((first,), rows), []
        import psycopg
        from psycopg import sql

        names = sql.SQL(", ").join(map(sql.Identifier, columns))
        target = sql.Identifier(table.name)
        types = [_PG_TYPES[type(table.c[name].type).__name__] for name in columns]
        copy = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)")
        try:
            with db.session.begin_nested():
                _copy(copy.format(target, names), types, rows, sent)
            return sent, set()
        except psycopg.errors.UniqueViolation:
            sent.extend(rows)  # any the failed COPY had not taken yet
            rows = sent
        scratch = sql.Identifier("import_rows")
        _driver().execute(sql.SQL("CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA")
                          .format(scratch, names, target))  # fmt: skip
        _copy(copy.format(scratch, names), types, rows)
        insert = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING RETURNING {}")
        returning = insert.format(target, names, names, scratch, sql.Identifier(columns[key]))
        written = {value.bytes if isinstance(value, uuid.UUID) and isinstance(rows[0][key], bytes) else value
                   for (value,) in _driver().execute(returning)}  # fmt: skip
        _driver().execute(sql.SQL("DROP TABLE {}").format(scratch))
        return rows, {row[key] for row in rows} - written


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


def _copy(statement, types: list[str], rows: Iterable[tuple], kept: list[tuple] | None = None) -> None:
    """COPY ``rows`` with ``statement``, each appended to ``kept`` (if given) as it goes."""
    from psycopg.types.string import BytesBinaryDumper

    with _driver().cursor() as cursor, cursor.copy(statement) as copy:
        # By oid, bytea would get the DB-API Binary wrapper's dumper (Python code); this one is psycopg's C one.
        cursor.adapters.register_dumper(None, BytesBinaryDumper)
        copy.set_types(types)
        write = copy.write_row
        if kept is None:
            for row in rows:
                write(row)
        else:
            keep = kept.append
            for row in rows:
                keep(row)
                write(row)
