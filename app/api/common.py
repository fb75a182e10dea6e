"""What every blueprint uses: a strict Blueprint, the role decorator with its OpenAPI documentation."""

from __future__ import annotations

from collections.abc import Mapping

import flask_smorest
import marshmallow as ma
from webargs.flaskparser import FlaskParser

from app.security import roles_required


def _unstorable(value) -> bool:
    """Whether ``value`` holds text the databases cannot store: a NUL character (PostgreSQL refuses it) or a lone
    surrogate (JSON can carry "\\ud800"; UTF-8 cannot encode it)."""
    if isinstance(value, str):
        if "\x00" in value:
            return True
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, Mapping):
        return any(_unstorable(k) or _unstorable(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_unstorable(v) for v in value)
    return False


class StrictParser(FlaskParser):
    """Unknown query parameters are errors, like unknown body fields: a typo in a filter must not go unnoticed.

    Text a database cannot store (NUL, lone surrogates) is refused here for every endpoint, as a 422 naming the
    field; otherwise it reaches the database and fails there with a 500.
    """

    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": ma.RAISE,
        "querystring": ma.RAISE,
    }

    def _load_location_data(self, *, schema, req, location):
        data = super()._load_location_data(schema=schema, req=req, location=location)
        if isinstance(data, Mapping):
            bad = sorted(str(k) for k, v in data.items() if _unstorable(k) or _unstorable(v))
            if bad:
                message = ["Must not contain NUL characters or lone surrogates."]
                raise ma.ValidationError({k.encode("utf-8", "replace").decode(): message for k in bad})
        return data


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint with the strict parser."""

    ARGUMENTS_PARSER = StrictParser()


BEARER = [{"bearerAuth": []}]


def requires(blp: Blueprint, *roles: str):
    """Require a signed-in user with one of ``roles`` (any role when none), and say so in the API document."""

    def decorator(fn):
        fn = roles_required(*roles)(fn)
        fn = blp.alt_response(401, response="UNAUTHORIZED")(fn)
        if roles:
            fn = blp.alt_response(403, response="FORBIDDEN")(fn)
        fn = blp.alt_response(429, response="TOO_MANY_REQUESTS")(fn)
        return blp.doc(security=BEARER)(fn)

    return decorator


def documents(blp: Blueprint, *statuses: int):
    """Document the error answers an endpoint can give besides the ones ``requires`` adds."""
    names = {400: "BAD_REQUEST", 404: "NOT_FOUND", 409: "CONFLICT", 413: "REQUEST_ENTITY_TOO_LARGE",
             415: "UNSUPPORTED_MEDIA_TYPE",  # skin photo uploads of another type
             422: "UNPROCESSABLE_ENTITY", 429: "TOO_MANY_REQUESTS", 401: "UNAUTHORIZED", 503: "SERVICE_UNAVAILABLE"}  # fmt: skip

    def decorator(fn):
        for status in statuses:
            fn = blp.alt_response(status, response=names[status])(fn)
        return fn

    return decorator
