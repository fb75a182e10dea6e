"""Writing an appointment upload: what each valid row does, decided and written a chunk at a time.

Re-uploading a file changes nothing: each row's key (:func:`appointments.import_key`: the external reference,
else number + time) is unique per clinic. A known key whose row says something new (for a referenced row: a new
time, language, or a name where the clinic's record of the patient has none) is ``updated``; a new time moves the
appointment through :func:`appointments.reschedule` (new reminders, the patient told); cancelled or past
appointments are left alone (``unchanged``). A row reads and writes only its own clinic's record of the patient.

Each chunk is one step of one transaction: what exists is read by :class:`Lookups` with one statement per chunk of
values (on PostgreSQL ahead of time, by the validating thread), then contacts, patients, the clinics' records of
them and appointments are written with no ORM object per row through :mod:`.bulk`, each table's rows built while
the previous ones are stored; new rows go in key order, with ascending ids, which halves PostgreSQL's index work.
Only the rare moved rows and the booking confirmations go through the ORM, at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter, itemgetter

from sqlalchemy import and_, bindparam, select, update

from app.errors import ServiceError
from app.extensions import db
from app.models import Appointment, Clinic, Contact, Patient, PatientRecord, utcnow
from app.models.appointment import ACTIVE_STATUSES, STATUS_SCHEDULED
from app.models.channel import SMS
from app.services import appointments
from app.services.appointment_import.bulk import Bulk, as_uuid, chunks, for_session
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
class _Person:
    """A phone number of this file: its contact and patient (ids in the form :meth:`Bulk.as_id` gives, ``None``
    until created)."""

    contact_id: uuid.UUID | None = None
    contact_language: str | None = None
    patient_id: uuid.UUID | None = None
    set_language: str | None = None  # fill the contact's empty language


@dataclass(slots=True)
class _Record:
    """A clinic's own record of a number of this file (id ``None`` until created): another clinic's is never read."""

    id: uuid.UUID | None = None
    name: str | None = None
    channel: str = SMS
    set_name: str | None = None  # fill the record's empty name


def load_people(phones: set[str], bulk: Bulk, execute: Execute) -> dict[str, _Person]:
    """The contact and patient (if any) of every number."""
    people = {phone: _Person() for phone in phones}
    as_id = bulk.as_id
    for where in bulk.matching(Contact.address, phones):
        found = execute(
            select(Contact.address, Contact.id, Contact.language, Patient.id)
            .outerjoin(Patient, Patient.contact_id == Contact.id)
            .where(where)
        )
        for address, contact_id, language, patient_id in found:
            person = people[address]
            person.contact_id, person.contact_language = as_id(contact_id), language
            person.patient_id = as_id(patient_id) if patient_id is not None else None
    return people


def load_records(clinic_phones: dict[Clinic, set[str]], patients: set[str], clinic_ids: dict[Clinic, uuid.UUID],
                 bulk: Bulk, execute: Execute) -> dict[tuple[Clinic, str], _Record]:  # fmt: skip
    """Each clinic's record (if any) of each of its numbers, per (clinic, number); numbers not in ``patients``
    (those with a stored patient) have none."""
    records = {(clinic, phone): _Record() for clinic, phones in clinic_phones.items() for phone in phones}
    for clinic, phones in clinic_phones.items():
        for where in bulk.matching(Patient.phone, phones & patients):
            found = execute(
                select(Patient.phone, PatientRecord.id, PatientRecord.name, PatientRecord.preferred_channel)
                .join(Patient, Patient.id == PatientRecord.patient_id)
                .where(PatientRecord.clinic_id == clinic_ids[clinic], where)
            )
            for phone, record_id, name, channel in found:
                record = records[(clinic, phone)]
                record.id, record.name, record.channel = record_id, name, channel
    return records


def load_existing(keys: dict[Clinic, set[str]], clinic_ids: dict[Clinic, uuid.UUID], bulk: Bulk,
                  execute: Execute) -> dict[tuple[Clinic, str], _Existing]:  # fmt: skip
    """The appointments already stored under each clinic's import ``keys``, per (clinic, key)."""
    existing: dict[tuple[Clinic, str], _Existing] = {}
    for clinic, clinic_keys in keys.items():
        for where in bulk.matching(Appointment.import_key, clinic_keys):
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
                .where(Appointment.clinic_id == clinic_ids[clinic], where)
            )
            for key, *fields in found:
                existing[(clinic, key)] = _Existing(*fields)
    return existing


@dataclass(slots=True)
class Found:
    """What the database already holds under one chunk's numbers, keys and (clinic, number) pairs not seen before."""

    people: dict[str, _Person]
    records: dict[tuple[Clinic, str], _Record]
    existing: dict[tuple[Clinic, str], _Existing]


class Lookups:
    """Reads what the database already holds for an upload's rows, a chunk at a time, each number, (clinic, key)
    and (clinic, number) once: ``lookups(rows, execute)``.

    It reads committed rows only, never the upload's own (those are of numbers and keys already seen), so on
    PostgreSQL it runs ahead of the writer, in the validating thread, on a connection of its own: under READ
    COMMITTED the writer's session would read the same rows, and the writer no longer waits for them. The
    clinics' ids are read once, here, so that thread reads no ORM attribute.
    """

    def __init__(self, bulk: Bulk, clinics: Iterable[Clinic]) -> None:
        self.bulk = bulk
        self.clinic_ids = {clinic: clinic.id for clinic in clinics}
        self.phones: set[str] = set()  # numbers seen
        self.keys: dict[Clinic, set[str]] = {}  # import keys seen, per clinic
        self.clinic_phones: dict[Clinic, set[str]] = {}  # numbers seen, per clinic
        self.patients: set[str] = set()  # numbers with a stored patient

    def __call__(self, rows: list[Row], execute: Execute) -> Found:
        keys: dict[Clinic, set[str]] = {}
        clinic_phones: dict[Clinic, set[str]] = {}
        for row in rows:
            clinic = row.clinic
            if clinic not in keys:
                keys[clinic], clinic_phones[clinic] = set(), set()
            keys[clinic].add(row.key)
            clinic_phones[clinic].add(row.phone)
        for clinic in keys:  # only what no earlier chunk had
            keys[clinic] -= self.keys.setdefault(clinic, set())
            self.keys[clinic] |= keys[clinic]
            clinic_phones[clinic] -= self.clinic_phones.setdefault(clinic, set())
            self.clinic_phones[clinic] |= clinic_phones[clinic]
        phones = set().union(*clinic_phones.values()) - self.phones
        self.phones |= phones
        existing = load_existing(keys, self.clinic_ids, self.bulk, execute)
        people = load_people(phones, self.bulk, execute)
        self.patients.update(phone for phone, person in people.items() if person.patient_id is not None)
        records = load_records(clinic_phones, self.patients, self.clinic_ids, self.bulk, execute)
        return Found(people, records, existing)


class Writer:
    """Decides what each valid row does and writes it, a chunk of rows at a time, all in the session's one
    transaction; :meth:`finish` does the rest (moves, fills, booking confirmations) or rolls it all back.

    Keys are (Clinic object, import key): a Clinic hashes by identity, in C (``UUID.__hash__`` is Python code).
    """

    def __init__(self, actor, now: datetime, atomic: bool, errors: Errors) -> None:
        self.actor, self.now, self.atomic, self.errors = actor, now, atomic, errors
        self.bulk = for_session()  # the backend's bulk reads and writes
        self.people: dict[str, _Person] = {}  # every number of the file's valid rows
        self.records: dict[tuple[Clinic, str], _Record] = {}  # ... each clinic's record of it
        self.existing: dict[tuple[Clinic, str], _Existing] = {}  # stored appointments under the file's keys
        self.new: dict[tuple[Clinic, str], Row] = {}  # appointments the file adds (their ids once written)
        self.changed: set[tuple[Clinic, str]] = set()  # ... written ones a later row changes
        self.confirm: list = []  # ids of new appointments whose clinic sends booking confirmations
        self.imported = self.updated = self.unchanged = 0

    def add(self, rows: list[Row], found: Found) -> None:
        """Decide and write one chunk of valid rows, given what :class:`Lookups` found for them."""
        self.existing.update(found.existing)
        self.people.update(found.people)
        self.records.update(found.records)
        fresh = [row for row in rows if self._decide(row)]
        _create_people(self.people, [row.phone for row in fresh], self.bulk)
        _create_records(self.records, self.people, [(row.clinic, row.phone) for row in fresh], self.bulk)
        written = _insert_appointments(self.actor, fresh, self.people, self.records, self.now, self.bulk)
        confirms = {clinic: clinic.booking_confirmation for clinic in {row.clinic for row in fresh}}
        for row, appointment_id in written:
            row.id = appointment_id
            if confirms[row.clinic]:
                self.confirm.append(appointment_id)
        lost = len(fresh) - len(written)  # a concurrent upload stored them first
        self.imported, self.unchanged = self.imported - lost, self.unchanged + lost

    def _decide(self, row: Row) -> bool:
        """Count the row; True when it is a new appointment to write."""
        slot = (row.clinic, row.key)
        person, record = self.people[row.phone], self.records[(row.clinic, row.phone)]
        first = self.new.get(slot)
        if first is not None:  # the same key earlier in this file
            if first.phone != row.phone:
                self.errors.add(row.line, "external_ref", MSG_REF_TAKEN)
                return False
            changed = _fill(person, record, row)
            if row.at != first.at or (row.language and row.language != first.language):
                first.at, first.language, changed = row.at, row.language or first.language, True
                if first.id is not None:
                    self.changed.add(slot)
            self._count(changed)
            return False
        stored = self.existing.get(slot)
        if stored is None:
            self.new[slot] = row
            _fill(person, record, row)
            self.imported += 1
            return True
        if stored.phone != row.phone:
            self.errors.add(row.line, "external_ref", MSG_REF_TAKEN)
            return False
        if stored.status not in ACTIVE_STATUSES:
            self.unchanged += 1
            return False
        changed = False
        if row.ref and row.at != (stored.new_at or stored.at):
            stored.new_at, stored.line, changed = row.at, row.line, True
        if row.language and row.language != (stored.new_language or stored.language):
            stored.new_language, changed = row.language, True
        self._count(_fill(person, record, row) or changed)
        return False

    def _count(self, changed: bool) -> None:
        if changed:
            self.updated += 1
        else:
            self.unchanged += 1

    def finish(self, *, failed: bool = False) -> None:
        """Write what needs the whole file, or roll everything back when an atomic upload had an error."""
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
        for slot in self.changed:
            row = self.new[slot]
            send_at, offset = appointments.next_reminder(row.clinic, row.at, STATUS_SCHEDULED, self.now)
            values.append({"_id": as_uuid(row.id), "_at": row.at, "_language": row.language,
                           "_send_at": send_at, "_offset": offset})  # fmt: skip
        table = Appointment.__table__
        db.session.execute(
            update(table)
            .where(table.c.id == bindparam("_id"))
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
    if row.name and not (record.name or record.set_name):
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


def _create_people(people: dict[str, _Person], phones: list[str], bulk: Bulk) -> None:
    """Contacts and patients for the numbers of new appointments that have none, in bulk."""
    now = utcnow()
    # In order of number, with ids in ascending order: the unique indexes (address, phone, id, contact_id) then
    # take the rows in key order, which PostgreSQL's B-trees do in half the time random order takes.
    phones = sorted(set(phones))
    ids = iter(bulk.new_ids(len(phones)) + bulk.new_ids(len(phones)))
    as_id = bulk.as_id

    def contact_rows() -> Iterator[tuple]:
        for phone in phones:
            person = people[phone]
            if person.contact_id is None:
                person.contact_id, person.contact_language = next(ids), person.set_language
                person.set_language = None
                yield person.contact_id, phone, person.contact_language, now, now

    _, skipped = bulk.insert(Contact.__table__, CONTACT_COLUMNS, contact_rows(), key=1)
    for phone in skipped:  # created concurrently: use that one
        people[phone].contact_id = as_id(db.session.scalar(select(Contact.id).where(Contact.address == phone)))

    def patient_rows() -> Iterator[tuple]:
        for phone in phones:
            person = people[phone]
            if person.patient_id is None:
                person.patient_id = next(ids)
                yield person.patient_id, phone, person.contact_id, now, now

    _, skipped = bulk.insert(Patient.__table__, PATIENT_COLUMNS, patient_rows(), key=1)
    for phone in skipped:
        people[phone].patient_id = as_id(db.session.scalar(select(Patient.id).where(Patient.phone == phone)))


def _create_records(records: dict[tuple[Clinic, str], _Record], people: dict[str, _Person],
                    pairs: list[tuple[Clinic, str]], bulk: Bulk) -> None:  # fmt: skip
    """Each clinic's record of the numbers of its new appointments where it has none, in bulk."""
    now = utcnow()
    as_id = bulk.as_id
    clinic_ids: dict[Clinic, object] = {}
    # By number (new patients' ids ascend with it) and with ascending ids: the indexes take the rows in key order.
    missing = sorted({pair for pair in pairs if records[pair].id is None}, key=itemgetter(1))

    def record_rows() -> Iterator[tuple]:
        for pair, record_id in zip(missing, bulk.new_ids(len(missing)), strict=True):
            clinic, phone = pair
            record = records[pair]
            if clinic not in clinic_ids:
                clinic_ids[clinic] = as_id(clinic.id)
            record.id, record.name, record.set_name = record_id, record.set_name, None
            yield record_id, clinic_ids[clinic], people[phone].patient_id, record.name, record.channel, now, now

    values, skipped = bulk.insert(PatientRecord.__table__, RECORD_COLUMNS, record_rows(), key=0)
    for pair, row in zip(missing, values, strict=True) if skipped else ():
        if row[0] in skipped:  # created concurrently: use that one
            record = records[pair]
            record.id, record.name, record.channel = db.session.execute(
                select(PatientRecord.id, PatientRecord.name, PatientRecord.preferred_channel).where(
                    PatientRecord.clinic_id == pair[0].id, PatientRecord.patient_id == as_uuid(row[2]))
            ).one()  # fmt: skip
            record.set_name = row[3] if record.name is None else None


def _fill_people(people: dict[str, _Person], records: dict[tuple[Clinic, str], _Record]) -> None:
    """Existing contacts' empty languages and the clinics' records' empty names, from the file."""
    contacts = [{"_id": as_uuid(p.contact_id), "_language": p.set_language} for p in people.values() if p.set_language]
    names = [{"_id": as_uuid(r.id), "_name": r.set_name} for r in records.values() if r.set_name and r.id is not None]
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
            .where(and_(table.c.id == bindparam("_id"), table.c.name.is_(None)))
            .values(name=bindparam("_name"), updated_at=utcnow()),
            names,
        )


def _insert_appointments(actor, rows: list[Row], people: dict[str, _Person], records: dict[tuple[Clinic, str], _Record],
                         now: datetime, bulk: Bulk) -> list[tuple]:  # fmt: skip
    """The new appointments, reminders planned, in bulk, each to the channel its clinic's record names; ``(row, id)``
    of those written (see :meth:`Bulk.as_id`)."""
    plans: dict[tuple[Clinic, datetime], tuple[datetime | None, int | None]] = {}
    clinic_ids: dict[Clinic, uuid.UUID] = {}
    next_reminder = appointments.next_reminder
    as_id = bulk.as_id
    created_by = getattr(actor, "user_id", None)
    created_by = as_id(created_by) if created_by else None
    stamp = utcnow()
    ids = bulk.new_ids(len(rows))
    # By time, with ids in ascending order: four of the table's indexes then take the rows in key order.
    ordered = sorted(rows, key=attrgetter("at"))

    def appointment_rows() -> Iterator[tuple]:
        for row, appointment_id in zip(ordered, ids, strict=True):
            clinic, at = row.clinic, row.at
            plan = plans.get((clinic, at))
            if plan is None:
                plan = plans[(clinic, at)] = next_reminder(clinic, at, STATUS_SCHEDULED, now)
                clinic_ids[clinic] = as_id(clinic.id)
            yield (appointment_id, clinic_ids[clinic], people[row.phone].patient_id, at, row.language,
                   STATUS_SCHEDULED, 0, row.ref, row.key, records[(clinic, row.phone)].channel, plan[0], plan[1],
                   created_by, stamp, stamp)  # fmt: skip

    values, skipped = bulk.insert(Appointment.__table__, APPOINTMENT_COLUMNS, appointment_rows(), key=0)
    return [(row, value[0]) for row, value in zip(ordered, values, strict=True) if value[0] not in skipped]


def _update_existing(actor, existing: dict[tuple[Clinic, str], _Existing], errors: Errors) -> None:
    """Stored appointments the file changes: languages in bulk; new times through :func:`appointments.reschedule`
    (reminders re-planned, the patient told), one at a time: they are rare. A file whose rows of one key end
    where the appointment already is changes nothing."""
    moves, languages = [], []
    for stored in existing.values():
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
