"""``app.services.appointment_import.import_csv``: the appointment CSV upload, on SQLite and PostgreSQL.

File formats, file-level and per-row errors are tables of (file, expected report); the rest are scenarios
(re-uploads, moved appointments, clinics and roles, booking confirmations). Times are in 2030, so they are in the
future for the services that read the clock themselves, and the import is given ``now`` explicitly.
"""

from __future__ import annotations

import codecs
import csv
import uuid
from datetime import UTC, datetime

import phonenumbers
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.errors import Forbidden, NotFound
from app.extensions import db
from app.messaging import inbox
from app.models import Appointment, AuditLog, Clinic, Contact, Message, Patient, PatientRecord
from app.models.appointment import STATUS_CANCELLED, STATUS_RESCHEDULED, STATUS_SCHEDULED
from app.security import Actor
from app.services import appointments
from app.services.appointment_import import (
    MAX_ERRORS,
    MSG_DATETIME,
    MSG_LANGUAGE,
    MSG_NO_CLINIC,
    MSG_OTHER_CLINIC,
    MSG_PAST,
    MSG_REF_TAKEN,
    MSG_REQUIRED,
    MSG_UNKNOWN_CLINIC,
    import_csv,
)
from app.services.appointment_import import bulk as import_bulk
from app.services.appointment_import import rows as import_rows
from app.services.appointment_import import writer as import_writer
from app.services.appointment_import.rows import MSG_DATETIME_DAY_FIRST as MSG_DAY_FIRST
from app.services.appointment_import.rows import MSG_MONTH_FIRST, MSG_NO_TIME
from app.services.phones import to_e164
from tests.conftest import make_clinic, make_user

# bulk paths: each backend has its own insert and look-up statements
pytestmark = pytest.mark.both_backends

NOW = datetime(2030, 3, 1, 6, 0, tzinfo=UTC)  # a Friday
HEADER = "patient_phone,appointment_datetime,language,patient_name,external_ref"
ROW = "+26771234567,2030-03-05 09:00,tn,Kagiso Molefe,R1"  # Tuesday 09:00 in Gaborone = 07:00 UTC
ROW2 = "+26772345678,2030-03-05 09:30,en,Mpho Tau,R2"
AT = datetime(2030, 3, 5, 7, 0, tzinfo=UTC)
AT2 = datetime(2030, 3, 5, 7, 30, tzinfo=UTC)
BAD_PHONE = "This is not a valid phone number."


@pytest.fixture
def home(app):
    return make_clinic("Tlokweng Clinic")  # BW, Africa/Gaborone, Setswana


@pytest.fixture
def ghana(app):
    return make_clinic("Kumasi Clinic", "GH", "Africa/Accra", "en")


def actor_of(user) -> Actor:
    return Actor(user_id=user.id, role=user.role, clinic_id=user.clinic_id, remote_addr="127.0.0.1")


@pytest.fixture
def staff(home) -> Actor:
    return actor_of(make_user("staff", clinic=home))


@pytest.fixture
def admin(app) -> Actor:
    return actor_of(make_user("admin"))


def upload(actor, content: str | bytes, **options) -> dict:
    data = content.encode() if isinstance(content, str) else content
    return import_csv(actor, data, now=NOW, **options)


def lines(*rows: str, header: str = HEADER, end: str = "\n") -> str:
    return end.join((header, *rows)) + end


def stored() -> list[Appointment]:
    db.session.expire_all()
    return list(db.session.scalars(select(Appointment).order_by(Appointment.appointment_datetime, Appointment.id)))


def count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def notices() -> list[Message]:
    db.session.expire_all()
    return list(db.session.scalars(select(Message).order_by(Message.created_at, Message.id)))


def counts(report: dict) -> tuple[int, int, int, int]:
    return report["imported"], report["updated"], report["unchanged"], report["error_count"]


# --- file formats -----------------------------------------------------------------------------------------------

FORMATS = {
    "comma": lines(ROW, ROW2).encode(),
    "semicolon with BOM": codecs.BOM_UTF8
    + lines(ROW.replace(",", ";"), ROW2.replace(",", ";"), header=HEADER.replace(",", ";")).encode(),  # fmt: skip
    "tab": lines(ROW.replace(",", "\t"), ROW2.replace(",", "\t"), header=HEADER.replace(",", "\t")).encode(),
    "CRLF": lines(ROW, ROW2, end="\r\n").encode(),
    "quoted fields": lines(
        '"+26771234567","2030-03-05 09:00","tn","Kagiso Molefe","R1"',
        '"+26772345678","2030-03-05 09:30","en","Mpho Tau","R2"',
    ).encode(),  # fmt: skip
    "blank lines and empty rows": (lines("", ROW, "", "", ROW2, ",,,,", " , ,,,") + "\n\n").encode(),
    "spreadsheet: trailing empty columns": lines(ROW + ",,", ROW2 + ",,", ",,,,,,", header=HEADER + ",,").encode(),
    "header case and spaces": lines(
        ROW, ROW2, header=" Patient_Phone , APPOINTMENT_DATETIME,Language ,patient_name,External_Ref"
    ).encode(),  # fmt: skip
    "columns in another order": lines(
        "2030-03-05 09:00,+26771234567,R1,tn,Kagiso Molefe",
        "2030-03-05 09:30,+26772345678,R2,en,Mpho Tau",
        header="appointment_datetime,patient_phone,external_ref,language,patient_name",
    ).encode(),  # fmt: skip
    "UTF-16 with BOM (Excel 'Unicode text')": lines(
        ROW.replace(",", "\t"), ROW2.replace(",", "\t"), header=HEADER.replace(",", "\t")
    ).encode("utf-16"),  # fmt: skip
}


@pytest.mark.parametrize("content", FORMATS.values(), ids=FORMATS.keys())
def test_file_formats_all_read_the_same(staff, home, content):
    report = upload(staff, content)

    assert report == {"imported": 2, "updated": 0, "unchanged": 0, "errors": [], "error_count": 0}
    rows = stored()
    assert [(a.patient.phone, a.appointment_datetime, a.language, a.record.name, a.external_ref) for a in rows] == [
        ("+26771234567", AT, "tn", "Kagiso Molefe", "R1"),
        ("+26772345678", AT2, "en", "Mpho Tau", "R2"),
    ]
    assert {a.clinic_id for a in rows} == {home.id}


def test_windows_1252_file_is_read_as_such(staff):
    content = lines("+26771234567,2030-03-05 09:00,tn,Tšhabong Mothei,R1").encode("cp1252")

    report = upload(staff, content)

    assert counts(report) == (1, 0, 0, 0)
    assert stored()[0].record.name == "Tšhabong Mothei"


def test_quoted_field_across_lines_keeps_line_numbers(staff):
    content = lines(
        '+26771234567,2030-03-05 09:00,tn,"Kagiso\nMolefe, ""KG""",R1',  # lines 2-3
        "",  # line 4
        "+26772345678,yesterday,en,Mpho,R2",  # line 5
        '+26773456789,2030-03-05 10:00,en,"Neo\r\nTau\nSebina",R3',  # lines 6-8
        "+26774567890,2030-03-05 10:30,fr,Lesego,R4",  # line 9
    )

    report = upload(staff, content)

    assert report["errors"] == [
        {"line": 5, "column": "appointment_datetime", "message": MSG_DAY_FIRST},
        {"line": 9, "column": "language", "message": MSG_LANGUAGE},
    ]
    assert counts(report)[0] == 2
    assert {a.record.name for a in stored()} == {'Kagiso\nMolefe, "KG"', "Neo\r\nTau\nSebina"}


# --- file-level errors ------------------------------------------------------------------------------------------

FILE_ERRORS = {
    "empty": (b"", [(1, None, "The file is empty: it needs a header row (patient_phone, appointment_datetime, ...).")]),
    "only blank lines": (
        b"\n\r\n ,, \n",
        [(1, None, "The file is empty: it needs a header row (patient_phone, appointment_datetime, ...).")],
    ),  # fmt: skip
    "missing required column": (
        lines("+26771234567,R1", header="patient_phone,external_ref").encode(),
        [(1, "appointment_datetime", "This required column is missing from the header row.")],
    ),
    "unknown column (typo)": (
        lines("+26771234567,2030-03-05 09:00", header="patient_phnoe,appointment_datetime").encode(),
        [
            (
                1,
                "patient_phnoe",
                "Unknown column; the columns are: patient_phone, appointment_datetime, language, "
                "patient_name, external_ref, clinic_id, repeat_every_days, repeat_count.",
            ),
            (1, "patient_phone", "This required column is missing from the header row."),
        ],
    ),  # fmt: skip
    "duplicate column": (
        lines(
            "+26771234567,2030-03-05 09:00,+26771234567", header="patient_phone,appointment_datetime,PATIENT_PHONE"
        ).encode(),
        [(1, "patient_phone", "This column appears twice.")],
    ),  # fmt: skip
    "no header, data first": (
        b"+26771234567,2030-03-05 09:00\n",
        [
            (
                1,
                "+26771234567",
                "Unknown column; the columns are: patient_phone, appointment_datetime, language, "
                "patient_name, external_ref, clinic_id, repeat_every_days, repeat_count.",
            ),
            (
                1,
                "2030-03-05 09:00",
                "Unknown column; the columns are: patient_phone, appointment_datetime, language, "
                "patient_name, external_ref, clinic_id, repeat_every_days, repeat_count.",
            ),
            (1, "patient_phone", "This required column is missing from the header row."),
            (1, "appointment_datetime", "This required column is missing from the header row."),
        ],
    ),  # fmt: skip
    "binary (an .xlsx sent by mistake)": (
        b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00",
        [(1, None, "This is not a CSV file (it looks like a spreadsheet or other binary file); save it as CSV.")],
    ),
    "header after blank lines": (
        b"\n\npatient_phone;when\n+26771234567;2030-03-05 09:00\n",
        [
            (
                3,
                "when",
                "Unknown column; the columns are: patient_phone, appointment_datetime, language, "
                "patient_name, external_ref, clinic_id, repeat_every_days, repeat_count.",
            ),
            (3, "appointment_datetime", "This required column is missing from the header row."),
        ],
    ),  # fmt: skip
}


@pytest.mark.parametrize("atomic", [False, True], ids=["partial", "atomic"])
@pytest.mark.parametrize(("content", "expected"), FILE_ERRORS.values(), ids=FILE_ERRORS.keys())
def test_file_level_errors_import_nothing(staff, content, expected, atomic):
    report = upload(staff, content, atomic=atomic)

    assert [(e["line"], e["column"], e["message"]) for e in report["errors"]] == expected
    assert counts(report) == (0, 0, 0, len(expected))
    assert count(Appointment) == count(Patient) == count(Contact) == 0


# --- per-row errors ---------------------------------------------------------------------------------------------

# (the middle row of three, expected errors on its line 3 as (column, message)); the rows around it import.
ROW_ERRORS = {
    "phone empty": (",2030-03-05 10:00,tn,Neo,R3", [("patient_phone", MSG_REQUIRED)]),
    "phone too short": ("12345,2030-03-05 10:00,tn,Neo,R3", [("patient_phone", BAD_PHONE)]),
    "phone letters": ("call me,2030-03-05 10:00,tn,Neo,R3", [("patient_phone", "This is not a phone number.")]),
    "phone of no country": (
        "+99912345678,2030-03-05 10:00,tn,Neo,R3",
        [("patient_phone", "This is not a phone number.")],
    ),
    "time empty": ("+26773456789,,tn,Neo,R3", [("appointment_datetime", MSG_REQUIRED)]),
    "time month first": (
        "+26773456789,03/15/2030 10:00,tn,Neo,R3",
        [("appointment_datetime", MSG_MONTH_FIRST.format(month=15))],
    ),  # fmt: skip
    "date without time": ("+26773456789,2030-03-05,tn,Neo,R3", [("appointment_datetime", MSG_NO_TIME)]),
    "day-first date without time": ("+26773456789,05/03/2030,tn,Neo,R3", [("appointment_datetime", MSG_NO_TIME)]),
    "no such day": ("+26773456789,2030-02-30 10:00,tn,Neo,R3", [("appointment_datetime", MSG_DAY_FIRST)]),
    "no such day, day first": ("+26773456789,30/02/2030 10:00,tn,Neo,R3", [("appointment_datetime", MSG_DAY_FIRST)]),
    "no such hour": ("+26773456789,2030-03-05 25:00,tn,Neo,R3", [("appointment_datetime", MSG_DAY_FIRST)]),
    "words": ("+26773456789,next Tuesday,tn,Neo,R3", [("appointment_datetime", MSG_DAY_FIRST)]),
    "in the past": ("+26773456789,2030-02-28 10:00,tn,Neo,R3", [("appointment_datetime", MSG_PAST)]),
    "exactly now": ("+26773456789,2030-03-01T06:00:00Z,tn,Neo,R3", [("appointment_datetime", MSG_PAST)]),
    "language unknown": ("+26773456789,2030-03-05 10:00,fr,Neo,R3", [("language", MSG_LANGUAGE)]),
    "name too long": (
        "+26773456789,2030-03-05 10:00,tn," + "N" * 201 + ",R3",
        [("patient_name", "At most 200 characters.")],
    ),  # fmt: skip
    "reference too long": (
        "+26773456789,2030-03-05 10:00,tn,Neo," + "R" * 101,
        [("external_ref", "At most 100 characters, and no control characters.")],
    ),  # fmt: skip
    "reference with a control character": (
        "+26773456789,2030-03-05 10:00,tn,Neo,R\x1f3",
        [("external_ref", "At most 100 characters, and no control characters.")],
    ),  # fmt: skip
    "a value beyond the header": (
        "+26773456789,2030-03-05 10:00,tn,Neo,R3,extra",
        [(None, "A value in column 6, which has no header: is a separator inside a field without quotes?")],
    ),  # fmt: skip
    "several problems": (
        "12345,2030-02-28 10:00,xx,Neo,R3",
        [("patient_phone", BAD_PHONE), ("appointment_datetime", MSG_PAST), ("language", MSG_LANGUAGE)],
    ),  # fmt: skip
}


@pytest.mark.parametrize(("row", "expected"), ROW_ERRORS.values(), ids=ROW_ERRORS.keys())
def test_row_errors_name_line_and_column(staff, row, expected):
    report = upload(staff, lines(ROW, row, ROW2))

    assert report["errors"] == [{"line": 3, "column": column, "message": message} for column, message in expected]
    assert counts(report) == (2, 0, 0, len(expected))
    assert [a.external_ref for a in stored()] == ["R1", "R2"]


@pytest.mark.parametrize(("row", "expected"), ROW_ERRORS.values(), ids=ROW_ERRORS.keys())
def test_atomic_upload_with_a_row_error_imports_nothing(staff, row, expected):
    report = upload(staff, lines(ROW, row, ROW2), atomic=True)

    assert counts(report) == (0, 0, 0, len(expected))
    assert [e["line"] for e in report["errors"]] == [3] * len(expected)
    assert count(Appointment) == count(Patient) == count(Contact) == 0


def test_atomic_upload_without_errors_imports_all(staff):
    assert counts(upload(staff, lines(ROW, ROW2), atomic=True)) == (2, 0, 0, 0)
    assert count(Appointment) == 2


def test_errors_are_capped_but_all_counted(staff):
    bad = [f"+26771234567,2030-02-{1 + i % 28:02d} 10:00,,,B{i}" for i in range(MAX_ERRORS + 5)]

    report = upload(staff, lines(ROW, *bad))

    assert report["error_count"] == MAX_ERRORS + 5
    assert len(report["errors"]) == MAX_ERRORS
    assert report["errors"][0] == {"line": 3, "column": "appointment_datetime", "message": MSG_PAST}
    assert report["imported"] == 1


# --- numbers and times ------------------------------------------------------------------------------------------

# (clinic, number as written) → E.164
NUMBERS = [
    ("home", "+26771234567", "+26771234567"),
    ("home", "26771234567", "+26771234567"),  # a spreadsheet dropped the +
    ("home", "71234567", "+26771234567"),  # national
    ("home", "71 234 567", "+26771234567"),
    ("home", "+267 71-234-567", "+26771234567"),
    ("home", "0026771234567", "+26771234567"),  # international dialling prefix
    ("home", "233241234567", "+233241234567"),  # a Ghanaian number, + dropped, at a Botswana clinic
    ("ghana", "0241234567", "+233241234567"),  # national with the trunk 0
    ("ghana", "241234567", "+233241234567"),
    ("ghana", "233241234567", "+233241234567"),
    ("ghana", "+233 24 123 4567", "+233241234567"),
    ("ghana", "26771234567", "+26771234567"),  # a Botswana number, + dropped, at a Ghanaian clinic
    ("ghana", "+2330241234567", "+233241234567"),  # a trunk 0 after the country code
]


@pytest.mark.parametrize(("where", "written", "e164"), NUMBERS)
def test_numbers_are_read_in_the_clinics_country(admin, home, ghana, where, written, e164):
    clinic = {"home": home, "ghana": ghana}[where]

    report = upload(admin, lines(f"{written},2030-03-05 09:00", header="patient_phone,appointment_datetime"),
                    clinic_id=clinic.id)  # fmt: skip

    assert counts(report) == (1, 0, 0, 0), report
    assert stored()[0].patient.phone == e164


# (clinic, time as written) → UTC
TIMES = [
    ("home", "2030-03-05 09:00", datetime(2030, 3, 5, 7, 0, tzinfo=UTC)),  # Gaborone is UTC+2 all year
    ("home", "2030-03-05T09:00", datetime(2030, 3, 5, 7, 0, tzinfo=UTC)),
    ("home", "2030-03-05 09:00:30", datetime(2030, 3, 5, 7, 0, 30, tzinfo=UTC)),
    ("home", "2030-03-05t09:00z", datetime(2030, 3, 5, 9, 0, tzinfo=UTC)),
    ("home", "2030-03-05T09:00:00Z", datetime(2030, 3, 5, 9, 0, tzinfo=UTC)),
    ("home", "2030-03-05T09:00:00+02:00", datetime(2030, 3, 5, 7, 0, tzinfo=UTC)),
    ("home", "2030-03-05T09:00:00+0000", datetime(2030, 3, 5, 9, 0, tzinfo=UTC)),
    ("home", "2030-03-05 09:00-01:00", datetime(2030, 3, 5, 10, 0, tzinfo=UTC)),
    ("home", " 2030-03-05 09:00 ", datetime(2030, 3, 5, 7, 0, tzinfo=UTC)),
    ("ghana", "2030-03-05 09:00", datetime(2030, 3, 5, 9, 0, tzinfo=UTC)),  # Accra is UTC
    ("ghana", "2030-03-05T09:00:00+02:00", datetime(2030, 3, 5, 7, 0, tzinfo=UTC)),
    # Botswana and Ghana write dates day first: what their clinic systems export is clinic time
    ("home", "09/12/2030 10:30", datetime(2030, 12, 9, 8, 30, tzinfo=UTC)),
    ("home", "9/12/30 10:30", datetime(2030, 12, 9, 8, 30, tzinfo=UTC)),
    ("home", "05/03/2030 9:00", datetime(2030, 3, 5, 7, 0, tzinfo=UTC)),
    ("home", "13.03.2030 09:00:15", datetime(2030, 3, 13, 7, 0, 15, tzinfo=UTC)),
    ("home", "13-03-2030T09:00", datetime(2030, 3, 13, 7, 0, tzinfo=UTC)),
    ("ghana", "09/12/2030 10:30", datetime(2030, 12, 9, 10, 30, tzinfo=UTC)),
    ("ghana", "1/4/31 08:05", datetime(2031, 4, 1, 8, 5, tzinfo=UTC)),
]


@pytest.mark.parametrize(("where", "written", "at"), TIMES)
def test_naive_times_are_clinic_time_and_offsets_are_kept(admin, home, ghana, where, written, at):
    clinic = {"home": home, "ghana": ghana}[where]

    report = upload(admin, lines(f'+26771234567,"{written}"', header="patient_phone,appointment_datetime"),
                    clinic_id=clinic.id)  # fmt: skip

    assert counts(report) == (1, 0, 0, 0), report
    assert stored()[0].appointment_datetime == at


def test_a_country_of_no_known_date_order_gets_iso_dates_only():
    # 05/03/2030 is 5 March in Gaborone and 3 May in New York: without a known order, a d/m/y date is refused.
    times = import_rows.Times(Clinic(name="Elsewhere", country="US", timezone="America/New_York"))

    assert times.read("2030-03-05 09:00") == datetime(2030, 3, 5, 14, 0, tzinfo=UTC)
    assert times.read("05/03/2030 09:00") is None
    assert times.problem("05/03/2030 09:00") == MSG_DATETIME


@pytest.mark.parametrize(("written", "language"), [("en", "en"), ("EN", "en"), (" tn ", "tn"), ("English", "en"),
                                                   ("SETSWANA", "tn"), ("", None)])  # fmt: skip
def test_language_words(staff, written, language):
    report = upload(staff, lines(f"+26771234567,2030-03-05 09:00,{written}", header="patient_phone,"
                                 "appointment_datetime,language"))  # fmt: skip

    assert counts(report) == (1, 0, 0, 0)
    assert stored()[0].language == language


def _reference_e164(value: str, region: str) -> str | None:
    """What the import must make of a number: phones.to_e164, and a retry with + for bare digits."""
    try:
        return to_e164(value, region)
    except ValueError:
        digits = value.strip()
        if digits.isascii() and digits.isdigit():
            try:
                return to_e164("+" + digits)
            except ValueError:
                return None
    return None


CODES = ["267", "233", "27", "234", "1", "44", "7", "39", "800", "2", "0", ""]


@settings(max_examples=400, deadline=None)
@given(
    region=st.sampled_from(["BW", "GH"]),
    plus=st.booleans(),
    code=st.sampled_from(CODES),
    rest=st.text(alphabet="0123456789", min_size=0, max_size=13),
)
def test_fast_number_path_agrees_with_phonenumbers(region, plus, code, rest):
    """The import's precompiled check of international numbers gives exactly what phones.to_e164 gives."""
    value = ("+" if plus else "") + code + rest
    phone, problem = import_rows.Phones(region).read(value)
    assert phone == _reference_e164(value, region)
    assert (problem is None) == (phone is not None)


@pytest.mark.parametrize("region", ["BW", "GH", "ZA", "NG", "GB", "IT", "US", "DE", "AR", "MX"])
def test_fast_number_path_agrees_on_every_example_number(region):
    for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE,
                 phonenumbers.PhoneNumberType.TOLL_FREE, phonenumbers.PhoneNumberType.PREMIUM_RATE):  # fmt: skip
        example = phonenumbers.example_number_for_type(region, kind)
        if example is None:
            continue
        e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        for value in (e164, e164[1:], e164[:-1], e164 + "1"):
            for home_region in ("BW", "GH"):
                assert import_rows.Phones(home_region).read(value)[0] == _reference_e164(value, home_region)


# --- re-uploads and changes -------------------------------------------------------------------------------------

MIXED = lines(ROW, ROW2, "+26773456789,2030-03-05 10:00,,,", "73456789,2030-03-06 10:00,tn,,")


@pytest.mark.parametrize("atomic", [False, True], ids=["partial", "atomic"])
def test_uploading_the_same_file_again_changes_nothing(staff, atomic):
    first = upload(staff, MIXED, atomic=atomic)
    before = [(a.id, a.appointment_datetime, a.updated_at) for a in stored()]

    again = upload(staff, MIXED, atomic=atomic)

    assert counts(first) == (4, 0, 0, 0)
    assert counts(again) == (0, 0, 4, 0)
    assert [(a.id, a.appointment_datetime, a.updated_at) for a in stored()] == before
    assert (count(Appointment), count(Patient), count(Contact)) == (4, 3, 3)


def test_same_key_twice_in_one_file(staff):
    report = upload(
        staff,
        lines(
            ROW,
            ROW,
            ROW2.replace("R2", "R1"),
            "+26771234567,2030-03-07 09:00,en,,R1",
            "+26773456789,2030-03-05 10:00,,,",
            "+267 7345 6789,2030-03-05 10:00,,,",
        ),
    )

    # Line 4: same reference, another number → refused. Line 5: same reference, new time and language → updated.
    assert report["errors"] == [{"line": 4, "column": "external_ref", "message": MSG_REF_TAKEN}]
    assert counts(report) == (2, 1, 2, 1)
    rows = stored()
    assert [(a.external_ref, a.appointment_datetime, a.language) for a in rows] == [
        (None, datetime(2030, 3, 5, 8, 0, tzinfo=UTC), None),
        ("R1", datetime(2030, 3, 7, 7, 0, tzinfo=UTC), "en"),
    ]
    assert rows[1].next_reminder_at == appointments.next_reminder(rows[1].clinic, rows[1].appointment_datetime,
                                                                  STATUS_SCHEDULED, NOW)[0]  # fmt: skip
    # Again: line 2 would move R1 back, line 5 moves it where it is; nothing moves, nobody is told.
    again = upload(staff, lines(ROW, ROW, ROW2.replace("R2", "R1"), "+26771234567,2030-03-07 09:00,en,,R1"))
    assert counts(again) == (0, 2, 1, 1)
    assert [(a.external_ref, a.appointment_datetime, a.status) for a in stored()][1] == (
        "R1", datetime(2030, 3, 7, 7, 0, tzinfo=UTC), STATUS_SCHEDULED)  # fmt: skip
    assert notices() == []


def test_a_file_in_many_chunks(staff, monkeypatch):
    """Validated and written two rows at a time: a later chunk can change rows an earlier one wrote."""
    monkeypatch.setattr(import_rows, "CHUNK_ROWS", 2)
    content = lines(
        ROW,
        "+26772345678,2030-03-05 09:30,,,",  # line 3: no name, no language
        "+26772345678,2030-03-06 09:30,en,Mpho Tau,R2",  # line 4: the same person, now with name and language
        "+26771234567,2030-03-07 09:00,en,,R1",  # line 5: line 2's appointment, moved, in English
        "+26773456789,2030-03-05 10:00,,,",
        "+26773456789,2030-02-05 10:00,,,",  # line 7: in the past
    )

    report = upload(staff, content)
    again = upload(staff, lines(*content.splitlines()[2:]))  # without line 2, which line 5 overrides

    assert report["errors"] == [{"line": 7, "column": "appointment_datetime", "message": MSG_PAST}]
    assert counts(report) == (4, 1, 0, 1)
    assert counts(again) == (0, 0, 4, 1)
    rows = {a.external_ref or a.patient.phone: a for a in stored()}
    moved = rows["R1"]
    assert (moved.appointment_datetime, moved.language, moved.status) == (
        datetime(2030, 3, 7, 7, 0, tzinfo=UTC), "en", STATUS_SCHEDULED)  # fmt: skip
    assert (moved.next_reminder_at, moved.next_reminder_offset) == appointments.next_reminder(
        moved.clinic, moved.appointment_datetime, STATUS_SCHEDULED, NOW
    )
    assert (rows["R2"].record.name, rows["R2"].patient.language) == ("Mpho Tau", "en")
    assert (count(Appointment), count(Patient), count(Contact)) == (4, 3, 3)
    assert notices() == []


def test_a_failure_validating_the_next_chunk_while_records_are_stored_stores_nothing(staff, monkeypatch):
    monkeypatch.setattr(import_rows, "CHUNK_ROWS", 2)
    read, seen = import_rows.Phones.read, []

    def failing(phones, value):
        seen.append(value)
        if len(seen) == 4:  # the third chunk, validated while the second chunk's records are stored
            raise RuntimeError("validation bug")
        return read(phones, value)

    monkeypatch.setattr(import_rows.Phones, "read", failing)

    with pytest.raises(RuntimeError, match="validation bug"):
        upload(staff, lines(*[f"+2677123456{i},2030-03-05 09:00,,,R{i}" for i in range(7)]))

    assert count(Appointment) == count(PatientRecord) == count(Patient) == count(Contact) == 0


@pytest.mark.parametrize("atomic", [False, True], ids=["partial", "atomic"])
def test_a_csv_error_further_on_imports_nothing_of_the_file(staff, monkeypatch, atomic):
    """A broken line after several chunks' worth of good rows: none of them is stored."""
    monkeypatch.setattr(import_rows, "CHUNK_ROWS", 2)
    rows = [f"+2677123456{i},2030-03-05 09:00,,,R{i}" for i in range(6)]
    rows.append("+26771234599,2030-03-05 09:00,,," + "x" * (csv.field_size_limit() + 1))

    report = upload(staff, lines(*rows), atomic=atomic)

    assert [(e["line"], e["column"]) for e in report["errors"]] == [(8, None)]
    assert report["errors"][0]["message"].startswith("The file is not valid CSV here: field larger than field limit")
    assert counts(report) == (0, 0, 0, 1)
    assert count(Appointment) == count(PatientRecord) == count(Patient) == count(Contact) == 0
    audit = db.session.scalars(select(AuditLog).where(AuditLog.action == "appointment.import")).one()
    assert (audit.details["imported"], audit.details["error_count"]) == (0, 1)


def test_a_failure_while_a_chunk_is_still_being_stored_stores_nothing(staff, monkeypatch):
    """A chunk's appointments are still streaming to the database while the next chunk is decided: an error then
    ends that COPY, rolls everything back and leaves the session usable."""
    monkeypatch.setattr(import_rows, "CHUNK_ROWS", 2)
    decide, decided = import_writer.Writer._decide, []

    def failing(writer, row):
        decided.append(row.line)
        if len(decided) == 4:  # the third chunk, while the second one's appointments are stored
            raise RuntimeError("disk on fire")
        return decide(writer, row)

    monkeypatch.setattr(import_writer.Writer, "_decide", failing)
    rows = [f"+2677123456{i},2030-03-05 09:00,,,R{i}" for i in range(7)]

    with pytest.raises(RuntimeError, match="disk on fire"):
        upload(staff, lines(*rows))

    assert decided == [2, 3, 4, 5]
    assert count(Appointment) == count(PatientRecord) == count(Patient) == count(Contact) == 0
    monkeypatch.setattr(import_writer.Writer, "_decide", decide)
    assert counts(upload(staff, lines(*rows))) == (7, 0, 0, 0)


@pytest.mark.parametrize("bad_line", [2, 5, 7])
def test_atomic_upload_in_many_chunks_imports_nothing(staff, monkeypatch, bad_line):
    monkeypatch.setattr(import_rows, "CHUNK_ROWS", 2)
    rows = [f"+2677123456{i},2030-03-05 09:00,,,R{i}" for i in range(7)]
    rows[bad_line - 2] = rows[bad_line - 2].replace("2030-03-05", "2030-02-05")

    report = upload(staff, lines(*rows), atomic=True)

    assert report["errors"] == [{"line": bad_line, "column": "appointment_datetime", "message": MSG_PAST}]
    assert counts(report) == (0, 0, 0, 1)
    assert count(Appointment) == count(Patient) == count(Contact) == 0


def test_reference_of_another_number_is_refused(staff):
    upload(staff, lines(ROW))

    report = upload(staff, lines(ROW.replace("+26771234567", "+26774567890"), ROW2))

    assert report["errors"] == [{"line": 2, "column": "external_ref", "message": MSG_REF_TAKEN}]
    assert counts(report) == (1, 0, 0, 1)
    assert count(Appointment) == 2


def test_new_time_for_a_reference_moves_the_appointment_and_tells_the_patient(staff):
    upload(staff, lines(ROW, ROW2))
    moved_to = datetime(2030, 3, 8, 12, 0, tzinfo=UTC)  # 14:00 in Gaborone
    changed = lines(ROW.replace("2030-03-05 09:00", "2030-03-08 14:00"), ROW2)

    report = upload(staff, changed)
    again = upload(staff, changed)

    assert counts(report) == (0, 1, 1, 0)
    assert counts(again) == (0, 0, 2, 0)
    moved = next(a for a in stored() if a.external_ref == "R1")
    assert (moved.appointment_datetime, moved.status) == (moved_to, STATUS_RESCHEDULED)
    assert (moved.next_reminder_at, moved.next_reminder_offset) == appointments.next_reminder(
        moved.clinic, moved_to, STATUS_RESCHEDULED, NOW
    )
    sent = notices()
    assert [(m.appointment_id, m.kind, m.address) for m in sent] == [(moved.id, "notice", "+26771234567")]
    assert sent[0].text == appointments.text_for(moved, "appointment_moved")
    assert "Labotlhano 08/03 ka 14:00" in sent[0].text  # Setswana, clinic time
    assert count(Appointment) == 2


def test_new_language_or_a_missing_name_updates_without_a_notice(staff):
    upload(staff, lines("+26771234567,2030-03-05 09:00,,,R1", ROW2))

    report = upload(staff, lines(ROW, ROW2.replace("Mpho Tau", "Someone Else")))

    assert counts(report) == (0, 1, 1, 0)
    first, second = stored()
    assert (first.language, first.record.name, first.patient.language) == ("tn", "Kagiso Molefe", "tn")
    assert second.record.name == "Mpho Tau"  # a given name is never overwritten
    assert notices() == []


@pytest.mark.parametrize("status", [STATUS_CANCELLED, "attended", "missed"])
def test_appointments_no_longer_active_are_left_alone(staff, status):
    upload(staff, lines(ROW))
    appointment = stored()[0]
    appointment.status = status
    db.session.commit()

    report = upload(staff, lines(ROW.replace("2030-03-05 09:00", "2030-03-08 14:00").replace(",tn,", ",en,")))

    assert counts(report) == (0, 0, 1, 0)
    appointment = stored()[0]
    assert (appointment.appointment_datetime, appointment.status, appointment.language) == (AT, status, "tn")
    assert notices() == []


def test_time_keyed_rows_are_not_moved_back_after_a_reschedule(staff):
    upload(staff, lines("+26771234567,2030-03-05 09:00,,,"))
    appointment = stored()[0]
    appointments.reschedule(None, appointment, datetime(2030, 3, 6, 8, 0, tzinfo=UTC), by_patient=True)
    db.session.commit()

    report = upload(staff, lines("+26771234567,2030-03-05 09:00,,,"))

    assert counts(report) == (0, 0, 1, 0)
    assert stored()[0].appointment_datetime == datetime(2030, 3, 6, 8, 0, tzinfo=UTC)


@pytest.mark.postgres_only  # on SQLite the import holds the write lock: nobody can write in between
def test_rows_another_upload_committed_meanwhile_are_skipped(staff, home, monkeypatch, database_url):
    """Another upload commits the same number and appointment after this one looked: the COPY meets the unique
    constraints, and the rows go through INSERT ... ON CONFLICT DO NOTHING instead."""
    other = sa.create_engine(database_url)
    looked = import_writer.load_people

    def racing(phones, bulk, execute):
        people = looked(phones, bulk, execute)
        with other.begin() as connection:
            contact_id, patient_id = uuid.uuid4(), uuid.uuid4()
            connection.execute(sa.insert(Contact.__table__).values(id=contact_id, address="+26771234567"))
            connection.execute(sa.insert(Patient.__table__).values(id=patient_id, phone="+26771234567",
                                                                   contact_id=contact_id))  # fmt: skip
            connection.execute(sa.insert(Appointment.__table__).values(clinic_id=home.id, patient_id=patient_id,
                                                                       appointment_datetime=AT, import_key="ref:R1",
                                                                       external_ref="R1"))  # fmt: skip
        return people

    monkeypatch.setattr(import_writer, "load_people", racing)
    try:
        report = upload(staff, lines(ROW, ROW2))
    finally:
        other.dispose()

    assert counts(report) == (1, 0, 1, 0)
    assert (count(Appointment), count(Patient), count(Contact)) == (2, 2, 2)
    assert sorted(a.patient.phone for a in stored()) == ["+26771234567", "+26772345678"]


@pytest.mark.parametrize("count", [0, 1, 2, 5_000])
def test_new_postgres_ids_are_distinct_time_ordered_uuids_in_ascending_order(count):
    """COPY writes new rows with these ids in this order (the primary key's index takes them in key order)."""
    ids = import_bulk._PostgresBulk().new_ids(count)

    assert len(ids) == len(set(ids)) == count
    assert ids == sorted(ids)
    assert all(uuid.UUID(bytes=raw).version == 7 and uuid.UUID(bytes=raw).variant == uuid.RFC_4122 for raw in ids)


# --- people -----------------------------------------------------------------------------------------------------


def test_patients_and_contacts_are_made_once_per_number(staff):
    report = upload(staff, lines(ROW, "71234567,2030-03-06 09:00,en,Other Name,R9", ROW2))

    assert counts(report) == (3, 0, 0, 0)
    assert (count(Patient), count(Contact)) == (2, 2)
    db.session.expire_all()
    patient = db.session.scalar(select(Patient).where(Patient.phone == "+26771234567"))
    record = db.session.scalar(select(PatientRecord).where(PatientRecord.patient_id == patient.id))
    # The first name and language given stay (patient_for's and record_for's rules); each appointment keeps its own.
    assert (record.name, patient.language, record.preferred_channel) == ("Kagiso Molefe", "tn", "sms")
    assert count(PatientRecord) == 2  # one per (number, clinic)
    assert sorted(a.language for a in stored()) == ["en", "en", "tn"]


def test_a_language_chosen_by_the_person_is_kept(staff):
    contact = inbox.contact_for("+26771234567")
    contact.language = "en"
    existing = inbox.contact_for("+26772345678")  # texted us before, never chose a language
    db.session.commit()

    report = upload(staff, lines(ROW, ROW2.replace(",en,", ",tn,")))

    assert counts(report) == (2, 0, 0, 0)
    db.session.expire_all()
    assert db.session.get(Contact, contact.id).language == "en"
    assert db.session.get(Contact, existing.id).language == "tn"
    assert count(Contact) == 2
    assert {a.patient.contact_id for a in stored()} == {contact.id, existing.id}
    assert [a.language for a in stored()] == ["tn", "tn"]


def test_existing_patients_keep_their_record_and_channel(staff, home):
    appointments.record_for(home, appointments.patient_for("+26771234567"), channel="whatsapp")
    db.session.commit()

    report = upload(staff, lines(ROW))

    assert counts(report) == (1, 0, 0, 0)
    appointment = stored()[0]
    assert (appointment.record.name, appointment.channel) == ("Kagiso Molefe", "whatsapp")
    assert (count(Patient), count(PatientRecord)) == (1, 1)


def test_another_clinics_upload_of_a_known_number_leaves_this_clinics_record(staff, home, ghana):
    upload(staff, lines("+26771234567,2030-03-05 09:00,tn,,R1"))  # Tlokweng has no name for them
    mine = db.session.scalar(select(PatientRecord))
    mine.preferred_channel, mine.notes = "whatsapp", "Hard of hearing"
    db.session.commit()
    kumasi = actor_of(make_user("staff", clinic=ghana))
    imposter = "+26771234567,2030-03-05 09:00,en,Imposter Name,K1"

    first, again = upload(kumasi, lines(imposter)), upload(kumasi, lines(imposter.replace("Imposter", "Other")))

    assert (counts(first), counts(again)) == ((1, 0, 0, 0), (0, 0, 1, 0))
    db.session.expire_all()
    records = {r.clinic_id: (r.name, r.preferred_channel, r.notes) for r in db.session.scalars(select(PatientRecord))}
    assert records == {home.id: (None, "whatsapp", "Hard of hearing"), ghana.id: ("Imposter Name", "sms", None)}
    shown = {a.clinic_id: (a.channel, a.record.name) for a in stored()}
    assert shown == {home.id: ("sms", None), ghana.id: ("sms", "Imposter Name")}  # Tlokweng's booked before WhatsApp
    assert count(Patient) == 1


def test_an_upload_for_two_clinics_makes_a_record_in_each(admin, home, ghana):
    rows = [f"+26771234567,2030-03-05 09:00,tn,Kagiso Molefe,R1,{home.id}",
            f"+26771234567,2030-03-05 09:00,en,Kagiso M,G1,{ghana.id}"]  # fmt: skip

    report = upload(admin, lines(*rows, header=HEADER + ",clinic_id"))

    assert counts(report) == (2, 0, 0, 0)
    db.session.expire_all()
    records = {r.clinic_id: r.name for r in db.session.scalars(select(PatientRecord))}
    assert records == {home.id: "Kagiso Molefe", ghana.id: "Kagiso M"}
    assert count(Patient) == 1


def test_reminders_are_planned_on_import(staff, home):
    home.reminder_offsets_minutes = [4 * 24 * 60, 24 * 60, 60]
    db.session.commit()
    # NOW is Friday 2030-03-01 08:00 in Gaborone (06:00 UTC); sending hours 07:00-20:00.
    upload(staff, lines(ROW, "+26772345678,2030-03-01 10:30,,,", "+26773456789,2030-03-02 06:30,,,",
                        "+26774567890,2030-03-04 06:00,,,"))  # fmt: skip

    plans = [(a.appointment_datetime, a.next_reminder_at, a.next_reminder_offset) for a in stored()]
    assert plans == [
        # Today 10:30: only the 1-hour reminder is still ahead (09:30).
        (datetime(2030, 3, 1, 8, 30, tzinfo=UTC), datetime(2030, 3, 1, 7, 30, tzinfo=UTC), 60),
        # Saturday 06:30: its 1-hour reminder (05:30) is before sending hours, and 07:00 is after the visit.
        (datetime(2030, 3, 2, 4, 30, tzinfo=UTC), None, None),
        # Monday 06:00: 1 day before is Sunday 06:00, moved to Sunday 07:00 (05:00 UTC).
        (datetime(2030, 3, 4, 4, 0, tzinfo=UTC), datetime(2030, 3, 3, 5, 0, tzinfo=UTC), 24 * 60),
        # Tuesday 09:00: 4 days before is today 09:00, still ahead.
        (AT, datetime(2030, 3, 1, 7, 0, tzinfo=UTC), 4 * 24 * 60),
    ]
    for appointment in stored():
        assert (appointment.next_reminder_at, appointment.next_reminder_offset) == appointments.next_reminder(
            appointment.clinic, appointment.appointment_datetime, STATUS_SCHEDULED, NOW
        )


# --- booking confirmations --------------------------------------------------------------------------------------


@pytest.mark.parametrize("confirmation", [False, True], ids=["off", "on"])
def test_booking_confirmation(staff, home, confirmation):
    home.booking_confirmation = confirmation
    db.session.commit()

    upload(staff, lines(ROW, ROW2))
    upload(staff, lines(ROW, ROW2))  # again: nothing new, nothing sent

    sent = notices()
    if not confirmation:
        assert sent == []
        return
    rows = stored()
    assert sorted((m.appointment_id, m.address, m.kind, m.language) for m in sent) == sorted(
        [(rows[0].id, "+26771234567", "notice", "tn"), (rows[1].id, "+26772345678", "notice", "en")]
    )
    by_id = {m.appointment_id: m for m in sent}
    assert by_id[rows[0].id].text == appointments.text_for(rows[0], "appointment_booked")
    assert by_id[rows[1].id].text.startswith(
        "Thusa: your visit to Tlokweng Clinic is booked for Tuesday 05/03 at 09:30"
    )


def test_opted_out_patients_are_booked_but_not_messaged(staff, home):
    home.booking_confirmation = True
    inbox.opt_out(inbox.contact_for("+26771234567"))
    db.session.commit()

    report = upload(staff, lines(ROW, ROW2))

    assert counts(report) == (2, 0, 0, 0)
    assert [m.address for m in notices()] == ["+26772345678"]
    assert all(a.next_reminder_at is not None for a in stored())  # the reminder job checks consent at send time


# --- clinics and roles ------------------------------------------------------------------------------------------

WITH_CLINIC = "patient_phone,appointment_datetime,clinic_id"


def test_staff_import_for_their_own_clinic_only(staff, home, ghana):
    report = upload(staff, lines(f"+26771234567,2030-03-05 09:00,{home.id}",
                                 f"+26772345678,2030-03-05 09:00,{ghana.id}",
                                 "+26773456789,2030-03-05 09:00,", header=WITH_CLINIC))  # fmt: skip

    assert report["errors"] == [{"line": 3, "column": "clinic_id", "message": MSG_OTHER_CLINIC}]
    assert counts(report) == (2, 0, 0, 1)
    assert {a.clinic_id for a in stored()} == {home.id}


def test_staff_cannot_name_another_clinic_for_the_upload(staff, ghana):
    with pytest.raises(Forbidden):
        upload(staff, lines(ROW), clinic_id=ghana.id)
    assert count(Appointment) == 0


@pytest.mark.parametrize("role", ["viewer", "pharmacist"])
def test_other_roles_cannot_import(home, role):
    with pytest.raises(Forbidden):
        upload(actor_of(make_user(role, clinic=home)), lines(ROW))
    assert count(Appointment) == 0


def test_admin_names_clinics_per_upload_and_per_row(admin, home, ghana):
    report = upload(admin, lines(f"+26771234567,2030-03-05 09:00,{home.id}", f"0241234567,2030-03-05 09:00,{ghana.id}",
                                 f"0241234568,2030-03-05 09:00,{str(ghana.id).upper()}",
                                 "+26772345678,2030-03-05 09:30,", header=WITH_CLINIC), clinic_id=home.id)  # fmt: skip

    assert counts(report) == (4, 0, 0, 0)
    placed = {(a.patient.phone, a.clinic_id, a.appointment_datetime) for a in stored()}
    assert placed == {
        ("+26771234567", home.id, datetime(2030, 3, 5, 7, 0, tzinfo=UTC)),
        ("+233241234567", ghana.id, datetime(2030, 3, 5, 9, 0, tzinfo=UTC)),
        ("+233241234568", ghana.id, datetime(2030, 3, 5, 9, 0, tzinfo=UTC)),
        ("+26772345678", home.id, datetime(2030, 3, 5, 7, 30, tzinfo=UTC)),
    }


def test_admin_rows_without_a_clinic_or_with_an_unknown_one(admin, home):
    report = upload(admin, lines("+26771234567,2030-03-05 09:00,", f"+26772345678,2030-03-05 09:00,{uuid.uuid4()}",
                                 "+26773456789,2030-03-05 09:00,clinic-1", f"+26774567890,2030-03-05 09:00,{home.id}",
                                 header=WITH_CLINIC))  # fmt: skip

    assert report["errors"] == [
        {"line": 2, "column": "clinic_id", "message": MSG_NO_CLINIC},
        {"line": 3, "column": "clinic_id", "message": MSG_UNKNOWN_CLINIC},
        {"line": 4, "column": "clinic_id", "message": MSG_UNKNOWN_CLINIC},
    ]
    assert counts(report) == (1, 0, 0, 3)


def test_admin_naming_an_unknown_clinic_for_the_upload(admin):
    with pytest.raises(NotFound):
        upload(admin, lines(ROW), clinic_id=uuid.uuid4())


def test_the_same_reference_in_two_clinics_is_two_appointments(admin, home, ghana):
    content = lines(f"+26771234567,2030-03-05 09:00,{home.id},R1", f"+26771234567,2030-03-05 09:00,{ghana.id},R1",
                    header=WITH_CLINIC + ",external_ref")  # fmt: skip

    assert counts(upload(admin, content)) == (2, 0, 0, 0)
    assert counts(upload(admin, content)) == (0, 0, 2, 0)
    assert count(Patient) == 1


# --- the audit trail --------------------------------------------------------------------------------------------


def test_one_audit_row_per_upload_without_numbers(staff, home):
    upload(staff, lines(ROW, ROW2, "bad,2030-03-05 09:00,,,"))
    upload(staff, b"")

    db.session.expire_all()
    rows = list(db.session.scalars(select(AuditLog).where(AuditLog.action == "appointment.import")
                                   .order_by(AuditLog.at)))  # fmt: skip
    assert [(r.entity_type, r.entity_id, r.actor_id) for r in rows] == [("clinic", str(home.id), staff.user_id)] * 2
    assert rows[0].details == {"rows": 3, "imported": 2, "updated": 0, "unchanged": 0, "error_count": 1,
                               "atomic": False}  # fmt: skip
    assert "267" not in str([r.details for r in rows])
