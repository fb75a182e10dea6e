"""Fields and schemas shared by every resource: phone numbers, pagination."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from app.i18n import LANGUAGES
from app.services.phones import to_e164

MAX_PER_PAGE = 100


class PhoneNumber(ma.fields.String):
    """An international phone number, normalised to E.164 on load."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("metadata", {}).setdefault("example", "+26771234567")
        super().__init__(validate=validate.Length(max=32), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return to_e164(text)
        except ValueError as exc:
            raise ma.ValidationError(str(exc)) from exc


def language_field(**kwargs) -> ma.fields.String:
    return ma.fields.String(validate=validate.OneOf(LANGUAGES), metadata={"description": "en or tn"}, **kwargs)


def trimmed(max_length: int, *, min_length: int = 1, **kwargs) -> ma.fields.String:
    """A string that must hold ``min_length`` to ``max_length`` characters after trimming white space."""
    return TrimmedString(validate=validate.Length(min=min_length, max=max_length), **kwargs)


class TrimmedString(ma.fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip()


class PaginationQuery(ma.Schema):
    """``page`` and ``per_page`` (at most 100), the same on every list."""

    page = ma.fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    per_page = ma.fields.Integer(load_default=20, validate=validate.Range(min=1, max=MAX_PER_PAGE))


def page_of(item_schema: type[ma.Schema], name: str) -> type[ma.Schema]:
    """A schema for one page of ``item_schema`` with the total (its API example: a page of the item's example)."""
    page = ma.Schema.from_dict(
        {
            "items": ma.fields.List(ma.fields.Nested(item_schema), required=True),
            "page": ma.fields.Integer(required=True),
            "per_page": ma.fields.Integer(required=True),
            "total": ma.fields.Integer(required=True, metadata={"description": "items across all pages"}),
            "pages": ma.fields.Integer(required=True),
        },
        name=name,
    )
    page.page_item = item_schema
    return page


def page_body(pagination) -> dict:
    """The response body for a Flask-SQLAlchemy ``Pagination``."""
    return {
        "items": pagination.items,
        "page": pagination.page,
        "per_page": pagination.per_page,
        "total": pagination.total,
        "pages": pagination.pages,
    }
