"""Clinics."""

from __future__ import annotations

import zoneinfo

import marshmallow as ma
from marshmallow import validate

from app.models.clinic import COUNTRIES
from app.schemas.common import PaginationQuery, language_field, page_of, trimmed

_TIMEZONES = frozenset(zoneinfo.available_timezones())


def _known_timezone(value: str) -> None:
    if value not in _TIMEZONES:
        raise ma.ValidationError("Not an IANA time zone name such as Africa/Gaborone or Africa/Accra.")


def timezone_field(**kwargs) -> ma.fields.String:
    return ma.fields.String(validate=_known_timezone, metadata={"example": "Africa/Gaborone"}, **kwargs)


class ClinicSchema(ma.Schema):
    id = ma.fields.UUID(dump_only=True)
    name = ma.fields.String()
    country = ma.fields.String(metadata={"description": "BW or GH"})
    timezone = ma.fields.String()
    default_language = ma.fields.String()
    created_at = ma.fields.AwareDateTime(dump_only=True)
    updated_at = ma.fields.AwareDateTime(dump_only=True)


class ClinicCreateSchema(ma.Schema):
    name = trimmed(200, required=True)
    country = ma.fields.String(required=True, validate=validate.OneOf(COUNTRIES))
    timezone = timezone_field(required=True)
    default_language = language_field(required=True)


class ClinicUpdateSchema(ma.Schema):
    name = trimmed(200)
    country = ma.fields.String(validate=validate.OneOf(COUNTRIES))
    timezone = timezone_field()
    default_language = language_field()


class ClinicQuerySchema(PaginationQuery):
    country = ma.fields.String(validate=validate.OneOf(COUNTRIES))


ClinicPageSchema = page_of(ClinicSchema, "ClinicPage")
