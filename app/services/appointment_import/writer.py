"""Writing an appointment upload: what each valid row does, decided and written a chunk at a time.

Re-uploading a file changes nothing: each row's key (:func:`appointments.import_key`: the external reference,
else number + time) is unique per clinic. A known key whose row says something new (for a referenced row: a new
time, language, or a name where the clinic's record of the patient has none) is ``updated``; a new time moves the
appointment through :func:`appointments.reschedule` (new reminders, the patient told); cancelled or past
appointments are left alone (``unchanged``). A row reads and writes only its own clinic's record of the patient.

Each chunk is one step of one transaction: what exists is read by :class:`Lookups` with one statement per chunk of
values (on PostgreSQL on a connection of its own, as the import's is busy streaming rows), then contacts, patients,
the clinics' records of them and appointments are written with no ORM object per row through :mod:`.bulk`, each
table's rows made ready while the previous table's are stored; new rows go in key order, with ascending ids, which
halves PostgreSQL's index work. Only the rare moved rows and the booking confirmations go through the ORM, at the
end.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from operator import itemgetter

from sqlalchemy import and_, bindparam, select, update

from app.errors import ServiceError
from app.extensions import db
from app.models import Appointment, Clinic, Contact, Patient, PatientRecord, utcnow
from app.models.appointment import ACTIVE_STATUSES, STATUS_SCHEDULED
from app.models.channel import SMS
from app.services import appointments
from app.services.appointment_import.bulk import Bulk, Pending, as_uuid, chunks, for_session
from app.services.appointment_import.reader import Errors
from app.services.appointment_import.rows import MSG_REF_TAKEN, Row

Execute = Callable  # Session.execute or Connection.execute: runs a SELECT, returns its rows


@dataclass(slots=True)
class _Existing:
    """An appointment already in the database under a key of this file, and what the file wants it to become."""

    id: uuid.UUID
    phone: str
    status: str
    at: datetime
    language: str | None
    new_at: datetime | None = None
    new_language: str | None = None
    line: int = 0  # the row that moves it


@dataclass(slots=True)
class _New:
    """A new appointment of this file (its key's first row), with what later rows of its key may change: all that
    is kept of it once written (not the row's line, name or reference, nor its id: a later row that changes it
    finds it by clinic and key; a 100,000-row upload holds every key's entry to the end)."""

    phone: str
    at: datetime
    language: str | None
    stored: bool = False  # written by this upload (False again if a concurrent upload stored its key first)


@dataclass(slots=True)
class _Person:
    """A phone number of this file: its contact and patient (ids in the form :meth:`Bulk.as_id` gives, ``None``
    until created)."""

    contact_id: uuid.UUID | None = None
    contact_language: str | None = None
    patient_id: uuid.UUID | None = None
    set_language: str | None = None  # fill the contact's empty language


@dataclass(slots=True)
class _Record:
    """A clinic's own record of a number of this file: another clinic's is never read.

    A 100,000-row upload holds one for each number to the end, so it keeps only what the import needs: whether the
    record exists (not its id: the names the file fills in are written by clinic and patient, unique together)
    and whether it has a name (not the name: the file's names fill empty ones only)."""

    stored: bool = False  # in the database, or written by this upload
    named: bool = False
    channel: str = SMS
    set_name: str | None = None  # fill the record's empty name


def load_people(phones: set[str], bulk: Bulk, execute: Execute) -> dict[str, _Person]:
    """The contact and patient (if any) of every number."""
    people = {phone: _Person() for phone in phones}
    as_id = bulk.as_id
    for where, params in bulk.matching(Contact.address, phones):
        found = execute(
            select(Contact.address, Contact.id, Contact.language, Patient.id)
            .outerjoin(Patient, Patient.contact_id == Contact.id)
            .where(where),
            params,
        )
        for address, contact_id, language, patient_id in found:
            person = people[address]
            person.contact_id, person.contact_language = as_id(contact_id), language
            person.patient_id = as_id(patient_id) if patient_id is not None else None
    return people


def load_records(clinic_phones: dict[Clinic, set[str]], patients: set[str], clinic_ids: dict[Clinic, uuid.UUID],
                 bulk: Bulk, execute: Execute) -> dict[Clinic, dict[str, _Record]]:  # fmt: skip
    """Each clinic's record (if any) of each of its numbers, per clinic and number; numbers not in ``patients``
    (those with a stored patient) have none."""
    records = {clinic: {phone: _Record() for phone in phones} for clinic, phones in clinic_phones.items()}
    for clinic, phones in clinic_phones.items():
        for where, params in bulk.matching(Patient.phone, phones & patients):
            found = execute(
                select(Patient.phone, PatientRecord.name, PatientRecord.preferred_channel)
                .join(Patient, Patient.id == PatientRecord.patient_id)
                .where(PatientRecord.clinic_id == clinic_ids[clinic], where),
                params,
            )
            for phone, name, channel in found:
                record = records[clinic][phone]
                record.stored, record.named, record.channel = True, bool(name), channel
    return records


def load_existing(keys: dict[Clinic, set[str]], clinic_ids: dict[Clinic, uuid.UUID], bulk: Bulk,
                  execute: Execute) -> dict[Clinic, dict[str, _Existing]]:  # fmt: skip
    """The appointments already stored under each clinic's import ``keys``, per clinic and key."""
    existing: dict[Clinic, dict[str, _Existing]] = {}
    for clinic, clinic_keys in keys.items():
        stored = existing[clinic] = {}
        for where, params in bulk.matching(Appointment.import_key, clinic_keys):
            found = execute(
                select(
                    Appointment.import_key,
                    Appointment.id,
                    Patient.phone,
                    Appointment.status,
                    Appointment.appointment_datetime,
                    Appointment.language,
                )  # fmt: skip
                .join(Patient, Patient.id == Appointment.patient_id)
                .where(Appointment.clinic_id == clinic_ids[clinic], where),
                params,
            )
            for key, *fields in found:
                stored[key] = _Existing(*fields)
    return existing


@dataclass(slots=True)
class Found:
    """What the database already holds under one chunk's numbers, keys and (clinic, number) pairs not seen before."""

    people: dict[str, _Person]
    records: dict[Clinic, dict[str, _Record]]
    existing: dict[Clinic, dict[str, _Existing]]


class Lookups:
    """Reads what the database already holds for an upload's rows, a chunk at a time, each number, (clinic, key)
    and (clinic, number) once: ``lookups(rows, execute)``.

    It reads committed rows only, never the upload's own (those are of numbers and keys already seen), so on
    PostgreSQL it reads on a connection of its own while the import's is busy storing rows: under READ COMMITTED
    the import's session would read the same rows.

    What earlier chunks looked up is in the :class:`Writer`'s maps, which it reads (no copy of its own: a
    100,000-row upload's numbers and keys take ~12 MB of sets): every number looked up is in ``people``, every
    (clinic, number) in ``records``, every (clinic, key) in ``existing`` (stored) or ``new`` (its first row).
    """

    def __init__(self, writer: Writer, clinics: Iterable[Clinic]) -> None:
        self.bulk = writer.bulk
        self.clinic_ids = {clinic: clinic.id for clinic in clinics}
        self.writer = writer
        self.patients: set[str] = set()  # numbers with a stored patient

    def __call__(self, rows: list[Row], execute: Execute) -> Found:
        seen_people, seen_records = self.writer.people, self.writer.records
        seen_existing, seen_new = self.writer.existing, self.writer.new
        keys: dict[Clinic, set[str]] = {}
        clinic_phones: dict[Clinic, set[str]] = {}
        for row in rows:  # only what no earlier chunk had
            clinic = row.clinic
            if clinic not in keys:
                keys[clinic], clinic_phones[clinic] = set(), set()
            if row.key not in seen_new[clinic] and row.key not in seen_existing[clinic]:
                keys[clinic].add(row.key)
            if row.phone not in seen_records[clinic]:
                clinic_phones[clinic].add(row.phone)
        phones = {phone for phone in set().union(*clinic_phones.values()) if phone not in seen_people}
        existing = load_existing(keys, self.clinic_ids, self.bulk, execute)
        people = load_people(phones, self.bulk, execute)
        self.patients.update(phone for phone, person in people.items() if person.patient_id is not None)
        records = load_records(clinic_phones, self.patients, self.clinic_ids, self.bulk, execute)
        return Found(people, records, existing)


class Writer:
    """Decides what each valid row does and writes it, a chunk of rows at a time, all in the session's one
    transaction; :meth:`finish` does the rest (moves, fills, booking confirmations) or rolls it all back.

    A chunk's appointments are still being stored when :meth:`add` returns (:meth:`Bulk.start`): the next chunk is
    decided meanwhile, in Python only (no query while a COPY runs), and :meth:`finish` or :meth:`abort` ends it.

    Its maps of records, stored and new appointments are per Clinic object (it hashes by identity, in C:
    ``UUID.__hash__`` is Python code), then per number or import key: a 100,000-row upload holds every entry to
    the end, and a (clinic, key) tuple per entry would be ~11 MB more.
    """

    def __init__(self, actor, now: datetime, atomic: bool, errors: Errors) -> None:
        self.actor, self.now, self.atomic, self.errors = actor, now, atomic, errors
        self.bulk = for_session()  # the backend's bulk reads and writes
        self.people: dict[str, _Person] = {}  # every number of the file's valid rows
        self.records: defaultdict[Clinic, dict[str, _Record]] = defaultdict(dict)  # ... each clinic's record of it
        self.existing: defaultdict[Clinic, dict[str, _Existing]] = defaultdict(dict)  # stored ones under its keys
        self.new: defaultdict[Clinic, dict[str, _New]] = defaultdict(dict)  # appointments it adds
        self.changed: set[tuple[Clinic, str]] = set()  # ... written ones a later row changes
        self.confirm: list = []  # ids of new appointments whose clinic sends booking confirmations
        # The last chunk's new appointments, still being stored.
        self.pending: tuple[_NewAppointments, Pending] | None = None
        self.imported = self.updated = self.unchanged = 0

    def add(self, rows: list[Row], found: Found, meanwhile: Callable[[], None]) -> None:
        """Decide and write one chunk of valid rows, given what :class:`Lookups` found for them; ``meanwhile`` (the
        next chunk's validation) is called once, while the database stores this chunk's records."""
        for clinic, stored in found.existing.items():
            self.existing[clinic].update(stored)
        self.people.update(found.people)
        for clinic, records in found.records.items():
            self.records[clinic].update(records)
        # Each table's rows are made ready while PostgreSQL still stores the previous table's: the COPYs run one
        # after the other, but the Python work between them overlaps them.
        fresh = [(row, new) for row in rows if (new := self._decide(row)) is not None]
        people = _NewPeople(self.people, [row.phone for row, _ in fresh], self.bulk)
        self._settle()  # the previous chunk's appointments
        contacts = people.start_contacts()
        records = _NewRecords(self.records, [(row.clinic, row.phone) for row, _ in fresh], self.bulk)
        people.finish_contacts(contacts)
        patients = people.start_patients()
        new = _NewAppointments(self.actor, fresh, self.now, self.bulk)
        people.finish_patients(patients)
        stored = records.start(self.people)
        try:
            meanwhile()
        except BaseException:  # the COPY ends before the transaction rolls back
            stored.abort()
            raise
        records.finish(stored)
        self.pending = (new, new.start(self.people, self.records))

    def _settle(self) -> None:
        """Wait for the last chunk's appointments to be stored; count those a concurrent upload stored first."""
        if self.pending is None:
            return
        written, pending = self.pending
        self.pending = None
        _, skipped = pending.finish()
        if skipped:
            self.imported, self.unchanged = self.imported - len(skipped), self.unchanged + len(skipped)
        confirms = {clinic: clinic.booking_confirmation for clinic in written.clinic_ids}
        for (row, new), appointment_id in zip(written.rows, written.ids, strict=True):
            if appointment_id in skipped:
                new.stored = False
            elif confirms[row.clinic]:
                self.confirm.append(appointment_id)

    def abort(self) -> None:
        """Give up an insert still under way, before the transaction is rolled back after an error."""
        if self.pending is not None:
            self.pending[1].abort()
            self.pending = None

    def _decide(self, row: Row) -> _New | None:
        """Count the row; its entry in ``self.new`` when it is a new appointment to write."""
        clinic, key = row.clinic, row.key
        person, record = self.people[row.phone], self.records[clinic][row.phone]
        clinic_new = self.new[clinic]
        first = clinic_new.get(key)
        if first is not None:  # the same key earlier in this file
            if first.phone != row.phone:
                self.errors.add(row.line, "external_ref", MSG_REF_TAKEN)
                return None
            changed = _fill(person, record, row)
            if row.at != first.at or (row.language and row.language != first.language):
                first.at, first.language, changed = row.at, row.language or first.language, True
                if first.stored:
                    self.changed.add((clinic, key))
            self._count(changed)
            return None
        stored = self.existing[clinic].get(key)
        if stored is None:
            entry = clinic_new[key] = _New(row.phone, row.at, row.language)
            _fill(person, record, row)
            self.imported += 1
            return entry
        if stored.phone != row.phone:
            self.errors.add(row.line, "external_ref", MSG_REF_TAKEN)
            return None
        if stored.status not in ACTIVE_STATUSES:
            self.unchanged += 1
            return None
        changed = False
        if row.ref and row.at != (stored.new_at or stored.at):
            stored.new_at, stored.line, changed = row.at, row.line, True
        if row.language and row.language != (stored.new_language or stored.language):
            stored.new_language, changed = row.language, True
        self._count(_fill(person, record, row) or changed)
        return None

    def _count(self, changed: bool) -> None:
        if changed:
            self.updated += 1
        else:
            self.unchanged += 1

    def finish(self, *, failed: bool = False) -> None:
        """Write what needs the whole file, or roll everything back when an atomic upload had an error."""
        if failed:
            self.abort()
        self._settle()
        if not (failed or (self.atomic and self.errors.count)):
            _fill_people(self.people, self.records)
            self._write_changes()
            _update_existing(self.actor, self.existing, self.errors)
        if failed or (self.atomic and self.errors.count):
            db.session.rollback()
            self.imported = self.updated = self.unchanged = 0
            return
        if self.confirm:
            _confirm_bookings(self.confirm)

    def _write_changes(self) -> None:
        """New appointments of this file written before a later row of it changed their time or language."""
        if not self.changed:
            return
        values = []
        for clinic, key in self.changed:
            new = self.new[clinic][key]
            if not new.stored:  # a concurrent upload stored it first
                continue
            send_at, offset = appointments.next_reminder(clinic, new.at, STATUS_SCHEDULED, self.now)
            values.append({"_clinic": clinic.id, "_key": key, "_at": new.at, "_language": new.language,
                           "_send_at": send_at, "_offset": offset})  # fmt: skip
        table = Appointment.__table__
        db.session.execute(
            update(table)
            .where(table.c.clinic_id == bindparam("_clinic"), table.c.import_key == bindparam("_key"))
            .values(
                appointment_datetime=bindparam("_at"),
                language=bindparam("_language"),
                next_reminder_at=bindparam("_send_at"),
                next_reminder_offset=bindparam("_offset"),
                updated_at=utcnow(),
            ),  # fmt: skip
            values,
        )


def _fill(person: _Person, record: _Record, row: Row) -> bool:
    """Apply :func:`appointments.patient_for`'s and :func:`appointments.record_for`'s rules (a name fills the
    clinic's record's empty one; a language is kept only where the person has none); True when the row changes
    the person or the record."""
    changed = False
    if row.name and not (record.named or record.set_name):
        record.set_name, changed = row.name, True
    if row.language and not (person.contact_language or person.set_language):
        person.set_language, changed = row.language, True
    return changed


CONTACT_COLUMNS = ("id", "address", "language", "created_at", "updated_at")
PATIENT_COLUMNS = ("id", "phone", "contact_id", "created_at", "updated_at")
RECORD_COLUMNS = ("id", "clinic_id", "patient_id", "name", "preferred_channel", "created_at", "updated_at")
APPOINTMENT_COLUMNS = ("id", "clinic_id", "patient_id", "appointment_datetime", "language", "status",
                       "reminders_sent", "external_ref", "import_key", "channel", "next_reminder_at",
                       "next_reminder_offset", "created_by", "created_at", "updated_at")  # fmt: skip


class _NewPeople:
    """Contacts and patients for the numbers of new appointments that have none, in bulk: made ready, then
    :meth:`start_contacts` / :meth:`finish_contacts`, :meth:`start_patients` / :meth:`finish_patients`."""

    def __init__(self, people: dict[str, _Person], phones: list[str], bulk: Bulk) -> None:
        self.people, self.bulk, self.now = people, bulk, utcnow()
        # In order of number, with ids in ascending order: the unique indexes (address, phone, id, contact_id) then
        # take the rows in key order, which PostgreSQL's B-trees do in half the time random order takes.
        self.phones = sorted(set(phones))
        self.ids = iter(bulk.new_ids(len(self.phones)) + bulk.new_ids(len(self.phones)))

    def start_contacts(self) -> Pending:
        return self.bulk.start(Contact.__table__, CONTACT_COLUMNS, self._contact_rows(), key=1)

    def _contact_rows(self) -> Iterator[tuple]:
        people, ids, now = self.people, self.ids, self.now
        for phone in self.phones:
            person = people[phone]
            if person.contact_id is None:
                person.contact_id, person.contact_language = next(ids), person.set_language
                person.set_language = None
                yield person.contact_id, phone, person.contact_language, now, now

    def finish_contacts(self, pending: Pending) -> None:
        for phone in pending.finish()[1]:  # created concurrently: use that one
            contact_id = db.session.scalar(select(Contact.id).where(Contact.address == phone))
            self.people[phone].contact_id = self.bulk.as_id(contact_id)

    def start_patients(self) -> Pending:
        return self.bulk.start(Patient.__table__, PATIENT_COLUMNS, self._patient_rows(), key=1)

    def _patient_rows(self) -> Iterator[tuple]:
        people, ids, now = self.people, self.ids, self.now
        for phone in self.phones:
            person = people[phone]
            if person.patient_id is None:
                person.patient_id = next(ids)
                yield person.patient_id, phone, person.contact_id, now, now

    def finish_patients(self, pending: Pending) -> None:
        for phone in pending.finish()[1]:
            patient_id = db.session.scalar(select(Patient.id).where(Patient.phone == phone))
            self.people[phone].patient_id = self.bulk.as_id(patient_id)


class _NewRecords:
    """Each clinic's record of the numbers of its new appointments where it has none, in bulk: made ready, then
    :meth:`start` / :meth:`finish`."""

    def __init__(self, records: dict[Clinic, dict[str, _Record]], pairs: list[tuple[Clinic, str]],
                 bulk: Bulk) -> None:  # fmt: skip
        self.records, self.bulk, self.now = records, bulk, utcnow()
        # By number (new patients' ids ascend with it) and with ascending ids: the indexes take the rows in key order.
        self.missing = sorted({(c, phone) for c, phone in pairs if not records[c][phone].stored}, key=itemgetter(1))
        self.ids = bulk.new_ids(len(self.missing))
        self.clinic_ids = {clinic: bulk.as_id(clinic.id) for clinic, _ in self.missing}

    def start(self, people: dict[str, _Person]) -> Pending:
        return self.bulk.start(PatientRecord.__table__, RECORD_COLUMNS, self._rows(people), key=0)

    def _rows(self, people: dict[str, _Person]) -> Iterator[tuple]:
        records, clinic_ids, now = self.records, self.clinic_ids, self.now
        for pair, record_id in zip(self.missing, self.ids, strict=True):
            clinic, phone = pair
            record = records[clinic][phone]
            name = record.set_name
            record.stored, record.named, record.set_name = True, bool(name), None
            yield record_id, clinic_ids[clinic], people[phone].patient_id, name, record.channel, now, now

    def finish(self, pending: Pending) -> None:
        values, skipped = pending.finish()
        for pair, row in zip(self.missing, values, strict=True) if skipped else ():
            if row[0] in skipped:  # created concurrently: use that one
                record = self.records[pair[0]][pair[1]]
                name, record.channel = db.session.execute(
                    select(PatientRecord.name, PatientRecord.preferred_channel).where(
                        PatientRecord.clinic_id == pair[0].id, PatientRecord.patient_id == as_uuid(row[2]))
                ).one()  # fmt: skip
                record.named, record.set_name = bool(name), row[3] if name is None else None


class _NewAppointments:
    """The new appointments, reminders planned, each to the channel its clinic's record names: made ready, then
    :meth:`start`. ``rows`` pairs each row with its entry in ``Writer.new``, whose time and language (a later row
    of the chunk may have changed them) are written; ``ids[i]`` is the id (see :meth:`Bulk.as_id`) of
    ``rows[i]``'s appointment."""

    def __init__(self, actor, rows: list[tuple[Row, _New]], now: datetime, bulk: Bulk) -> None:
        self.bulk = bulk
        created_by = getattr(actor, "user_id", None)
        self.created_by = bulk.as_id(created_by) if created_by else None
        self.stamp = utcnow()
        # The clinics' attributes are read here, not while rows stream: they are columns loaded with the clinic
        # (see load_clinics), and nothing may query while a COPY runs.
        self.clinic_ids = {clinic: bulk.as_id(clinic.id) for clinic in {row.clinic for row, _ in rows}}
        self.plans: dict[tuple[Clinic, datetime], tuple[datetime | None, int | None]] = {}
        for row, new in rows:
            if (row.clinic, new.at) not in self.plans:
                self.plans[(row.clinic, new.at)] = appointments.next_reminder(row.clinic, new.at, STATUS_SCHEDULED,
                                                                              now)  # fmt: skip
        # Written by time, with ids in ascending order: four of the table's indexes then take the rows in key order.
        self.rows = rows
        self.order = sorted(range(len(rows)), key=[new.at for _, new in rows].__getitem__)  # a C key, not a lambda
        self.ids: list = [None] * len(rows)
        for i, appointment_id in zip(self.order, bulk.new_ids(len(rows)), strict=True):
            self.ids[i] = appointment_id

    def start(self, people: dict[str, _Person], records: dict[Clinic, dict[str, _Record]]) -> Pending:
        return self.bulk.start(Appointment.__table__, APPOINTMENT_COLUMNS, self._rows(people, records), key=0)

    def _rows(self, people: dict[str, _Person], records: dict[Clinic, dict[str, _Record]]) -> Iterator[tuple]:
        plans, clinic_ids, created_by, stamp = self.plans, self.clinic_ids, self.created_by, self.stamp
        rows, ids = self.rows, self.ids
        for i in self.order:
            row, new = rows[i]
            clinic, at = row.clinic, new.at
            plan = plans[(clinic, at)]
            new.stored = True
            yield (ids[i], clinic_ids[clinic], people[row.phone].patient_id, at, new.language,
                   STATUS_SCHEDULED, 0, row.ref, row.key, records[clinic][row.phone].channel, plan[0], plan[1],
                   created_by, stamp, stamp)  # fmt: skip


def _fill_people(people: dict[str, _Person], records: dict[Clinic, dict[str, _Record]]) -> None:
    """Existing contacts' empty languages and the clinics' records' empty names, from the file."""
    contacts = [{"_id": as_uuid(p.contact_id), "_language": p.set_language} for p in people.values() if p.set_language]
    names = [{"_clinic": clinic.id, "_patient": as_uuid(people[phone].patient_id), "_name": record.set_name}
             for clinic, clinic_records in records.items() for phone, record in clinic_records.items()
             if record.set_name and record.stored]  # fmt: skip
    table = Contact.__table__
    if contacts:
        db.session.execute(
            update(table)
            .where(and_(table.c.id == bindparam("_id"), table.c.language.is_(None)))
            .values(language=bindparam("_language"), updated_at=utcnow()),
            contacts,
        )
    table = PatientRecord.__table__
    if names:
        db.session.execute(
            update(table)
            .where(
                and_(
                    table.c.clinic_id == bindparam("_clinic"),
                    table.c.patient_id == bindparam("_patient"),
                    table.c.name.is_(None),
                )
            )
            .values(name=bindparam("_name"), updated_at=utcnow()),
            names,
        )


def _update_existing(actor, existing: dict[Clinic, dict[str, _Existing]], errors: Errors) -> None:
    """Stored appointments the file changes: languages in bulk; new times through :func:`appointments.reschedule`
    (reminders re-planned, the patient told), one at a time: they are rare. A file whose rows of one key end
    where the appointment already is changes nothing."""
    moves, languages = [], []
    for stored in chain.from_iterable(clinic_existing.values() for clinic_existing in existing.values()):
        if stored.new_at is not None and stored.new_at != stored.at:
            moves.append(stored)
        elif stored.new_language and stored.new_language != stored.language:
            languages.append({"_id": stored.id, "_language": stored.new_language})
    table = Appointment.__table__
    if languages:
        db.session.execute(
            update(table).where(table.c.id == bindparam("_id")).values(language=bindparam("_language"),
                                                                       updated_at=utcnow()),
            languages,
        )  # fmt: skip
    for stored in moves:
        appointment = db.session.get(Appointment, stored.id)
        if stored.new_language:
            appointment.language = stored.new_language  # first, so the patient is told in it
        try:
            with db.session.begin_nested():
                appointments.reschedule(actor, appointment, stored.new_at)
        except ServiceError as exc:  # changed meanwhile (e.g. cancelled by the patient a moment ago)
            errors.add(stored.line, "appointment_datetime", exc.message)


def _confirm_bookings(ids: list) -> None:
    """The booking confirmation of each new appointment of a clinic that sends them."""
    for chunk in chunks(map(as_uuid, ids), 500):
        for appointment in db.session.scalars(select(Appointment).where(Appointment.id.in_(chunk))).unique():
            if appointment.clinic.booking_confirmation:
                appointments.notify(appointment, "appointment_booked", "booked")
