"""Helpers every blueprint uses: the role decorator with its OpenAPI documentation."""

from __future__ import annotations

from flask_smorest import Blueprint

from app.security import roles_required

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
