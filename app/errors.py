"""One JSON shape for every error: ``{"error": {"code", "message", "details"}}``.

Every 4xx/5xx, whether raised by Flask, webargs, flask-jwt-extended, flask-limiter, a service or an unexpected
bug, leaves through here. Services raise :class:`ServiceError` subclasses and know nothing of HTTP.
"""

from __future__ import annotations

import copy
import logging
from http import HTTPStatus

import marshmallow as ma
import redis
from apispec import BasePlugin
from flask import Flask, jsonify
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from sqlalchemy.exc import IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from app.extensions import db
from app.schemas.examples import ERRORS as ERROR_EXAMPLES
from app.schemas.examples import schema_example

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """A domain error with an HTTP status, a stable machine code and a human message."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: dict | None = None, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code:
            self.code = code


class ValidationFailed(ServiceError):
    status, code = 422, "validation_error"


class Unauthorized(ServiceError):
    status, code = 401, "unauthorized"


class Forbidden(ServiceError):
    status, code = 403, "forbidden"


class NotFound(ServiceError):
    status, code = 404, "not_found"


class Conflict(ServiceError):
    status, code = 409, "conflict"


class ErrorBodySchema(ma.Schema):
    code = ma.fields.String(required=True, metadata={"description": "stable machine-readable code"})
    message = ma.fields.String(required=True, metadata={"description": "what went wrong, for people"})
    details = ma.fields.Dict(required=True, metadata={"description": "per-field messages and other specifics"})


class ErrorSchema(ma.Schema):
    """The body of every error response."""

    error = ma.fields.Nested(ErrorBodySchema, required=True)


def error_response(status: int, code: str, message: str, details: dict | None = None, headers: dict | None = None):
    """A Flask response in the one error shape."""
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


class CommonErrorsPlugin(BasePlugin):
    """Document the errors every operation of a kind can give, so no endpoint has to list them by hand.

    A JSON body can be malformed (400) or too large (413); a bearer-protected operation checks revocations in
    the database, which can be down (503).
    """

    def operation_helper(self, path=None, operations=None, **kwargs) -> None:
        for operation in (operations or {}).values():
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:
                responses.setdefault("400", "BAD_REQUEST")
                responses.setdefault("413", "REQUEST_ENTITY_TOO_LARGE")
            if operation.get("security"):
                responses.setdefault("503", "SERVICE_UNAVAILABLE")


class ExamplesPlugin(BasePlugin):
    """Give each schema of the API document the example it declares (``class Meta: example``; see
    app/schemas/examples.py), so Swagger UI, the mock server and the Postman collection show realistic values."""

    def schema_helper(self, name, definition, **kwargs) -> dict | None:
        schema = kwargs.get("schema")
        example = schema_example(schema) if schema is not None and not isinstance(schema, str) else None
        return {"example": copy.deepcopy(example)} if example is not None else None


class ThusaApi(Api):
    """flask-smorest's Api, answering its errors (webargs validation included) in Thusa's shape."""

    ERROR_SCHEMA = ErrorSchema

    def __init__(self, app: Flask | None = None) -> None:
        super().__init__(app, spec_kwargs={"extra_plugins": [CommonErrorsPlugin(), ExamplesPlugin()]})

    def _register_responses(self) -> None:
        """flask-smorest's shared responses (one per status), error ones with their example (ERRORS)."""
        for status in HTTPStatus:
            response: dict = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
                if status in ERROR_EXAMPLES:
                    response["example"] = copy.deepcopy(ERROR_EXAMPLES[status])
            prepare_response(response, self.spec, self.DEFAULT_RESPONSE_CONTENT_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, self.DEFAULT_RESPONSE_CONTENT_TYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)

    def handle_http_exception(self, error: HTTPException):
        status = error.code or 500
        data = getattr(error, "data", None) or {}
        details = data.get("errors") or data.get("messages") or {}
        message = data.get("message")
        if status == 422 and details:
            message = message or "The request has invalid or unknown fields; see details."
        elif status == 400 and details:
            message = message or "The request could not be read; see details."
        elif status == 413:
            message = "The request body is larger than the limit of this server."
        elif status == 429:
            message = f"Too many requests: the limit is {error.description}. Try again later."
        if not message:
            message = error.description if isinstance(error.description, str) else HTTPStatus(status).phrase
        headers = dict(data.get("headers") or {})
        if status == 405 and hasattr(error, "valid_methods") and error.valid_methods:
            headers["Allow"] = ", ".join(error.valid_methods)
        return error_response(status, _HTTP_CODES.get(status, HTTPStatus(status).phrase.lower()), message,
                              details, headers)  # fmt: skip


def init_app(app: Flask) -> None:
    """Register the handlers that are not HTTPExceptions (the Api registers the HTTPException one)."""

    @app.errorhandler(ServiceError)
    def _service_error(error: ServiceError):
        # A service may name headers (e.g. Retry-After on a 429), still knowing nothing else of HTTP.
        return error_response(error.status, error.code, error.message, error.details, getattr(error, "headers", None))

    @app.errorhandler(IntegrityError)
    def _integrity(error: IntegrityError):
        db.session.rollback()
        log.warning("integrity error: %s", error.orig.__class__.__name__)
        return error_response(409, "conflict", "This conflicts with data that already exists or is still in use.")

    @app.errorhandler(redis.RedisError)
    def _redis_down(error: redis.RedisError):
        log.error("Redis unavailable: %s", error.__class__.__name__)
        return error_response(503, "service_unavailable", "A backing service is unavailable; try again shortly.",
                              headers={"Retry-After": "5"})  # fmt: skip

    @app.errorhandler(OperationalError)
    def _db_down(error: OperationalError):
        db.session.rollback()
        log.error("database unavailable: %s", error.orig.__class__.__name__)
        return error_response(503, "service_unavailable", "The database is unavailable; try again shortly.",
                              headers={"Retry-After": "5"})  # fmt: skip

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on our side; it has been logged.")
