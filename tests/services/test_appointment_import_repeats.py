"""The CSV upload's optional ``repeat_every_days`` / ``repeat_count`` columns (app/services/appointment_import/
repeats.py): a row with them starts a series of recurring visits; bad values are row errors naming the column;
a re-upload changes nothing. Both backends (the series are found by (clinic, import key) tuples)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Appointment, AppointmentSeries
from app.security import Actor
from app.services.appointment_import import import_csv
from tests.conftest import make_clinic, make_user

pytestmark = pytest.mark.both_backends

NOW = datetime(2030, 3, 1, 6, 0, tzinfo=UTC)
HEADER = "patient_phone,appointment_datetime,external_ref,repeat_every_days,repeat_count"


@pytest.fixture
def staff(app) -> Actor:
    user = make_user("staff", clinic=make_clinic("Tlokweng Clinic"))
    return Actor(user_id=user.id, role=user.role, clinic_id=user.clinic_id, remote_addr="127.0.0.1")


def upload(actor, *lines: str, header: str = HEADER, atomic: bool = False) -> dict:
    return import_csv(actor, "\n".join([header, *lines]).encode(), atomic=atomic, now=NOW)


def test_rows_with_repeat_columns_start_series_and_a_reupload_changes_nothing(staff):
    lines = ["+26771234567,2030-03-05 09:00,R1,28,6", "+26772345678,2030-03-05 09:30,R2,28,",
             "+26773456789,2030-03-05 10:00,R3,,"]  # fmt: skip
    report = upload(staff, *lines)
    again = upload(staff, *lines)

    assert report["imported"] == 3 and report["error_count"] == 0 and again["imported"] == 0
    by_ref = {a.external_ref: a for a in db.session.scalars(select(Appointment))}
    assert by_ref["R3"].series_id is None
    first, open_ended = (db.session.get(AppointmentSeries, by_ref[ref].series_id) for ref in ("R1", "R2"))
    assert (first.every_days, first.count, by_ref["R1"].series_number) == (28, 6, 1)
    assert (open_ended.every_days, open_ended.count) == (28, None)
    assert db.session.scalar(select(func.count()).select_from(AppointmentSeries)) == 2


@pytest.mark.parametrize(("every", "count", "column"), [("0", "", "repeat_every_days"), ("x", "3", "repeat_every_days"),
                                                        ("400", "", "repeat_every_days"), ("28", "1", "repeat_count"),
                                                        ("28", "99", "repeat_count"), ("", "3", "repeat_count"),
                                                        ("-7", "", "repeat_every_days")])  # fmt: skip
def test_a_bad_repeat_value_is_a_row_error_and_atomic_imports_nothing(staff, every, count, column):
    report = upload(staff, f"+26771234567,2030-03-05 09:00,R1,{every},{count}", "+26772345678,2030-03-05 09:30,R2,,")
    assert report["imported"] == 1 and [(e["line"], e["column"]) for e in report["errors"]] == [(2, column)]

    atomic = upload(staff, f"+26773456789,2030-03-06 09:00,R3,{every},{count}", "+26774567890,2030-03-06 09:30,R4,7,",
                    atomic=True)  # fmt: skip
    assert atomic["imported"] == 0
    assert db.session.scalar(select(func.count()).select_from(AppointmentSeries)) == 0
