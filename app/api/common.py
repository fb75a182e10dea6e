"""What every blueprint uses: a strict Blueprint, the role decorator with its OpenAPI documentation."""

from __future__ import annotations

import flask_smorest
import marshmallow as ma
from webargs.flaskparser import FlaskParser

from app.security import roles_required


class StrictParser(FlaskParser):
    """Unknown query parameters are errors, like unknown body fields: a typo in a filter must not go unnoticed."""

    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": ma.RAISE,
        "querystring": ma.RAISE,
    }


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
             422: "UNPROCESSABLE_ENTITY", 429: "TOO_MANY_REQUESTS", 401: "UNAUTHORIZED", 503: "SERVICE_UNAVAILABLE"}  # fmt: skip

    def decorator(fn):
        for status in statuses:
            fn = blp.alt_response(status, response=names[status])(fn)
        return fn

    return decorator
