"""Clinics, with their reminder, sending-hours and booking settings."""

from __future__ import annotations

import re
import zoneinfo
from datetime import time

import marshmallow as ma
from marshmallow import validate

from app.i18n.gsm7 import septets
from app.models.clinic import COUNTRIES, DEFAULT_SEND_WINDOW, SMS_NAME_LENGTH, WEEKDAYS
from app.schemas import examples as ex
from app.schemas.appointments import text_field
from app.schemas.common import PaginationQuery, language_field, page_of

_TIMEZONES = frozenset(zoneinfo.available_timezones())
_HH_MM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
MAX_OFFSETS = 5
MAX_OFFSET_MINUTES = 30 * 24 * 60  # 30 days
MAX_PERIODS_PER_DAY = 6


def _known_timezone(value: str) -> None:
    if value not in _TIMEZONES:
        raise ma.ValidationError("Not an IANA time zone name such as Africa/Gaborone or Africa/Accra.")


def timezone_field(**kwargs) -> ma.fields.String:
    return ma.fields.String(validate=_known_timezone, metadata={"example": "Africa/Gaborone"}, **kwargs)


class HourMinute(ma.fields.Field):
    """A local time of day as ``"HH:MM"`` (24-hour clock)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("metadata", {}).update(type="string", pattern=_HH_MM.pattern, example="07:00")
        super().__init__(**kwargs)

    def _serialize(self, value: time | None, attr, obj, **kwargs) -> str | None:
        return None if value is None else value.strftime("%H:%M")

    def _deserialize(self, value, attr, data, **kwargs) -> time:
        if not isinstance(value, str) or not _HH_MM.match(value):
            raise ma.ValidationError('Write the time as "HH:MM" on the 24-hour clock, e.g. "07:00".')
        return time.fromisoformat(value)


def _gsm7(value: str) -> None:
    if septets(value) is None:
        raise ma.ValidationError("Use only GSM-7 characters (plain Latin letters, digits, common punctuation), so "
                                 "every SMS stays one segment.")  # fmt: skip


def _distinct(values: list[int]) -> None:
    if len(set(values)) != len(values):
        raise ma.ValidationError("Each offset may appear only once.")


def _valid_opening_hours(value: dict) -> None:
    """Each day: [open, close] pairs with open before close, none overlapping another."""
    errors = {}
    for day, periods in value.items():
        problems = []
        for period in periods:
            if len(period) != 2:
                problems.append('Each period is a pair ["HH:MM", "HH:MM"]: opening and closing time.')
            elif period[0] >= period[1]:
                problems.append(f"{period[0]}-{period[1]}: the opening time must be before the closing time.")
        if not problems:
            ordered = sorted(periods)
            for before, after in zip(ordered, ordered[1:], strict=False):
                if after[0] < before[1]:
                    problems.append(f"{before[0]}-{before[1]} and {after[0]}-{after[1]} overlap.")
        if problems:
            errors[day] = problems
    if errors:
        raise ma.ValidationError(errors)


def _opening_hours(**kwargs) -> ma.fields.Dict:
    return ma.fields.Dict(
        keys=ma.fields.String(validate=validate.OneOf(WEEKDAYS)),
        values=ma.fields.List(
            ma.fields.List(
                ma.fields.String(validate=validate.Regexp(_HH_MM, error='Write times as "HH:MM", e.g. "07:30".')),
                validate=validate.Length(equal=2),
            ),
            validate=validate.Length(max=MAX_PERIODS_PER_DAY),
        ),
        metadata={
            "description": f"per weekday ({', '.join(WEEKDAYS)}): [open, close] pairs in clinic time; a day left "
            "out or empty is closed",
            "example": {"mon": [["07:30", "12:30"], ["13:30", "16:30"]], "sat": [["08:00", "12:00"]]},
        },
        **kwargs,
    )


class _Settings(ma.Schema):
    """The optional settings, the same on create and on change."""

    short_name = text_field(SMS_NAME_LENGTH, allow_none=True,
                            metadata={"description": "the name in SMS and USSD texts (GSM-7); null: the name"})  # fmt: skip
    reminder_offsets_minutes = ma.fields.List(
        ma.fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_OFFSET_MINUTES)),
        validate=[validate.Length(max=MAX_OFFSETS), _distinct],
        metadata={"description": f"whole minutes before the appointment (1 to {MAX_OFFSET_MINUTES}, at most "
                                 f"{MAX_OFFSETS}, distinct); [] sends no reminders", "example": [4320, 1440]},
    )  # fmt: skip
    send_window_start = HourMinute(metadata={"description": "reminders go out from this clinic time"})
    send_window_end = HourMinute(metadata={"description": "until this clinic time (after the start)"})
    opening_hours = _opening_hours()
    slot_minutes = ma.fields.Integer(strict=True, validate=validate.Range(min=5, max=240))
    slot_capacity = ma.fields.Integer(strict=True, validate=validate.Range(min=1, max=500),
                                      metadata={"description": "patients per slot"})  # fmt: skip
    booking_confirmation = ma.fields.Boolean(metadata={"description": "SMS the patient when an appointment is made"})
    # Who gets the clinic's low-stock SMS.
    alert_recipient_ids = ma.fields.List(
        ma.fields.UUID(), allow_none=True, validate=validate.Length(min=1, max=50),
        metadata={"description": "users who get low-stock SMS (1 to 50 active accounts with a phone); null: the clinic's staff"},
    )  # fmt: skip

    @ma.validates("short_name")
    def _short_name_in_gsm7(self, value: str | None, **_kwargs) -> None:
        if value is not None:
            _gsm7(value)

    @ma.validates("opening_hours")
    def _opening_hours_valid(self, value: dict, **_kwargs) -> None:
        _valid_opening_hours(value)

    @ma.post_load
    def _normalise(self, data: dict, **_kwargs) -> dict:
        if "reminder_offsets_minutes" in data:
            data["reminder_offsets_minutes"] = sorted(data["reminder_offsets_minutes"], reverse=True)
        if "opening_hours" in data:
            data["opening_hours"] = {day: sorted(data["opening_hours"][day]) for day in WEEKDAYS
                                     if day in data["opening_hours"]}  # fmt: skip
        return data


def _window_ordered(start: time, end: time) -> None:
    if start >= end:
        raise ma.ValidationError("Must be after send_window_start.", "send_window_end")


class ClinicSchema(ma.Schema):
    class Meta:
        example = {
            "id": ex.GABORONE_CLINIC,
            "name": "Gaborone Main Clinic",
            "country": "BW",
            "timezone": "Africa/Gaborone",
            "default_language": "tn",
            "short_name": "Gaborone Clinic",
            "reminder_offsets_minutes": [4320, 1440],
            "send_window_start": "07:00",
            "send_window_end": "20:00",
            "opening_hours": {day: [["07:30", "16:30"]] for day in ("mon", "tue", "wed", "thu", "fri")},
            "slot_minutes": 30,
            "slot_capacity": 4,
            "booking_confirmation": True,
            "alert_recipient_ids": None,
            "created_at": ex.CREATED,
            "updated_at": ex.UPDATED,
        }

    id = ma.fields.UUID(dump_only=True)
    name = ma.fields.String()
    country = ma.fields.String(metadata={"description": "BW or GH"})
    timezone = ma.fields.String()
    default_language = ma.fields.String()
    short_name = ma.fields.String(allow_none=True, metadata={"description": "the name in SMS; null: the name"})
    reminder_offsets_minutes = ma.fields.List(ma.fields.Integer())
    send_window_start = HourMinute()
    send_window_end = HourMinute()
    opening_hours = _opening_hours()
    slot_minutes = ma.fields.Integer()
    slot_capacity = ma.fields.Integer()
    booking_confirmation = ma.fields.Boolean()
    alert_recipient_ids = ma.fields.List(ma.fields.UUID(), allow_none=True)  # low-stock SMS recipients
    created_at = ma.fields.AwareDateTime(dump_only=True)
    updated_at = ma.fields.AwareDateTime(dump_only=True)


class ClinicCreateSchema(_Settings):
    class Meta:
        example = {
            "name": "Tlokweng Clinic",
            "country": "BW",
            "timezone": "Africa/Gaborone",
            "default_language": "tn",
            "short_name": "Tlokweng",
            "reminder_offsets_minutes": [4320, 1440],
            "send_window_start": "07:00",
            "send_window_end": "19:00",
            "opening_hours": {"mon": [["07:30", "12:30"], ["13:30", "16:30"]], "sat": [["08:00", "12:00"]]},
            "slot_minutes": 20,
            "slot_capacity": 3,
            "booking_confirmation": True,
        }

    name = text_field(200, required=True)
    country = ma.fields.String(required=True, validate=validate.OneOf(COUNTRIES))
    timezone = timezone_field(required=True)
    default_language = language_field(required=True)

    @ma.validates_schema
    def _window(self, data: dict, **_kwargs) -> None:
        if "send_window_start" in data or "send_window_end" in data:
            _window_ordered(data.get("send_window_start", DEFAULT_SEND_WINDOW[0]),
                            data.get("send_window_end", DEFAULT_SEND_WINDOW[1]))  # fmt: skip


class ClinicUpdateSchema(_Settings):
    """Every field optional; only those sent change. The sending hours change together (both fields)."""

    class Meta:
        example = {
            "short_name": "Gaborone Clinic",
            "send_window_start": "08:00",
            "send_window_end": "19:30",
            "slot_capacity": 5,
        }

    name = text_field(200)
    country = ma.fields.String(validate=validate.OneOf(COUNTRIES))
    timezone = timezone_field()
    default_language = language_field()

    @ma.validates_schema
    def _window(self, data: dict, **_kwargs) -> None:
        given = {"send_window_start", "send_window_end"} & set(data)
        if len(given) == 1:
            missing = ({"send_window_start", "send_window_end"} - given).pop()
            raise ma.ValidationError("send_window_start and send_window_end are changed together.", missing)
        if given:
            _window_ordered(data["send_window_start"], data["send_window_end"])


class ClinicQuerySchema(PaginationQuery):
    country = ma.fields.String(validate=validate.OneOf(COUNTRIES))


ClinicPageSchema = page_of(ClinicSchema, "ClinicPage")
