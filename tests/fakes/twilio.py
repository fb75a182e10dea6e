"""A fake Twilio REST API (Messages.json create only) that holds requests to Twilio's own OpenAPI description.

Built on :class:`tests.fakes.server.FakeProvider`. Every request is checked against the ``CreateMessage`` operation
of ``tests/fakes/twilio_api_v2010.yaml`` (twilio/twilio-oai): the path, HTTP Basic auth, the form
content type, parameter names (unknown → 400 code 20001), single vs repeatable parameters, enums and URI formats,
and the required ``To`` (missing → 400 code 21604). Two rules the live API enforces but the spec does not mark
are checked too: ``From`` or ``MessagingServiceSid`` (21603), and ``Body``, ``MediaUrl`` or ``ContentSid`` (21602).
A valid request gets ``201`` and a Message resource with exactly the spec's properties (``sid`` ``SM`` + 32 hex,
``status`` ``queued``), unless a failure was scripted::

    with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake:
        fake.fail(400, 21610)            # the next create answers like Twilio does for an opted-out recipient
        fake.slow(2.0)                   # the one after that answers after 2 s
        ... app code sends ...
        assert fake.violations == []     # no request broke the contract
        assert fake.created[0]["To"] == "+26771234567"
"""

from __future__ import annotations

import base64
import functools
import re
import sys
import threading
import uuid
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from tests.fakes.server import FakeProvider, RecordedRequest

SPEC_PATH = Path(__file__).resolve().parent / "twilio_api_v2010.yaml"
OPERATION_ID = "CreateMessage"
FORM = "application/x-www-form-urlencoded"

# Messages Twilio gives for the error codes tests script (https://www.twilio.com/docs/api/errors/<code>).
ERROR_MESSAGES = {
    20001: "Unknown parameter",
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    21211: "Invalid 'To' Phone Number",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
    21602: "Message body is required",
    21603: "The 'From' phone number is required",
    21604: "The 'To' phone number is required",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
}


@dataclass(frozen=True)
class CreateMessageContract:
    """The parts of the spec the fake checks against."""

    path_pattern: re.Pattern
    path_parameters: dict
    request_properties: dict
    required: tuple[str, ...]
    message_properties: dict
    sid_pattern: re.Pattern
    statuses: tuple[str, ...]


def _resolve(spec: dict, node: dict) -> dict:
    while "$ref" in node:
        *_, name = node["$ref"].split("/")
        node = spec["components"]["schemas"][name]
    return node


@functools.cache
def create_message_contract() -> CreateMessageContract:
    """Load the CreateMessage operation (request schema, Message resource) from Twilio's OpenAPI description."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = yaml.load(SPEC_PATH.read_text(), Loader=loader)  # noqa: S506 (a safe loader)
    found = [
        (path, item["post"])
        for path, item in spec["paths"].items()
        if isinstance(item.get("post"), dict) and item["post"].get("operationId") == OPERATION_ID
    ]
    if len(found) != 1:
        raise LookupError(f"{OPERATION_ID}: {len(found)} operations in {SPEC_PATH}")
    ((path, operation),) = found
    schema = operation["requestBody"]["content"][FORM]["schema"]
    resource = _resolve(spec, operation["responses"]["201"]["content"]["application/json"]["schema"])
    properties = {name: _resolve(spec, prop) for name, prop in schema["properties"].items()}
    message_properties = {name: _resolve(spec, prop) for name, prop in resource["properties"].items()}
    return CreateMessageContract(
        path_pattern=re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$"),
        path_parameters={p["name"]: p["schema"] for p in operation.get("parameters", []) if p["in"] == "path"},
        request_properties=properties,
        required=tuple(schema.get("required", ())),
        message_properties=message_properties,
        sid_pattern=re.compile(message_properties["sid"]["pattern"]),
        statuses=tuple(message_properties["status"]["enum"]),
    )


def twilio_error(status: int, code: int, message: str | None = None) -> tuple[int, dict]:
    """An error answer shaped like Twilio's (``code``, ``message``, ``more_info``, ``status``)."""
    return status, {
        "code": code,
        "message": message or ERROR_MESSAGES.get(code, "Error"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class FakeTwilio:
    """A loopback Twilio API for ``messages.create``; see the module docstring."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.contract = create_message_contract()
        self.provider = FakeProvider()
        self.violations: list[str] = []  # why each rejected request broke the contract
        self.created: list[dict] = []  # the form of each accepted create (MediaUrl as a list)
        self.resources: list[dict] = []  # the Message resources answered
        self._script: list[tuple] = []
        self._closing = threading.Event()
        self._lock = threading.Lock()

    # --- scripting ----------------------------------------------------------------------------------------------

    def fail(self, status: int, code: int | None = None, message: str | None = None) -> FakeTwilio:
        """The next valid create answers ``status`` with Twilio's error body (code defaults to 20000 + status)."""
        self._script.append(("error", status, code if code is not None else 20000 + status, message))
        return self

    def slow(self, seconds: float) -> FakeTwilio:
        """The next valid create answers (successfully) only after ``seconds``."""
        self._script.append(("slow", seconds))
        return self

    # --- server -------------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.provider.base_url

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.provider.requests

    def messages_path(self) -> str:
        return f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    def __enter__(self) -> FakeTwilio:
        self.provider.__enter__()
        self.provider.respond(self._answer)
        server = self.provider._server
        report = server.handle_error

        def handle_error(request, client_address):
            # A client that timed out on a slow answer has hung up: that is what the test wanted.
            if not isinstance(sys.exc_info()[1], ConnectionError):
                report(request, client_address)

        server.handle_error = handle_error
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()  # wake a slow answer so shutdown does not wait for it
        self.provider.__exit__(*exc)

    def _answer(self, request: RecordedRequest) -> tuple:
        match = self.contract.path_pattern.match(request.path)
        if request.method != "POST" or not match or match["AccountSid"] != self.account_sid:
            return twilio_error(404, 20404)
        for name, value in match.groupdict().items():
            if not _matches(self.contract.path_parameters.get(name, {}), value):
                self.violations.append(f"path parameter {name}={value!r} does not match the spec")
                return twilio_error(404, 20404)
        if not self._authorised(request.headers):
            return twilio_error(401, 20003)
        problem = self._check(request)
        if problem:
            self.violations.append(problem[1])
            return twilio_error(400, problem[0], problem[1])
        with self._lock:
            step = self._script.pop(0) if self._script else None
        if step and step[0] == "error":
            return twilio_error(step[1], step[2], step[3])
        if step and step[0] == "slow":
            self._closing.wait(step[1])
        return 201, self._resource(request.form)

    def _authorised(self, headers: dict) -> bool:
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, encoded = value.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            return base64.b64decode(encoded).decode() == f"{self.account_sid}:{self.auth_token}"
        except ValueError:
            return False

    def _check(self, request: RecordedRequest) -> tuple[int, str] | None:
        content_type = next((v for k, v in request.headers.items() if k.lower() == "content-type"), "")
        if content_type.split(";")[0].strip() != FORM:
            return 20001, f"Content-Type {content_type!r} is not {FORM}"
        form = request.form
        for name, values in form.items():
            prop = self.contract.request_properties.get(name)
            if prop is None:
                return 20001, f"Unknown parameter {name!r}"
            if prop.get("type") != "array" and len(values) > 1:
                return 20001, f"{name} given {len(values)} times"
            item = prop.get("items", prop) if prop.get("type") == "array" else prop
            for value in values:
                if "enum" in item and value not in item["enum"]:
                    return 20001, f"{name}={value!r} is not one of {item['enum']}"
                if not _matches(item, value):
                    return 20001, f"{name}={value!r} does not match the spec's {item}"
        for name in self.contract.required:
            if not form.get(name, [""])[0]:
                return 21604, f"required parameter {name!r} missing"
        # Enforced by the live API, not marked in the spec.
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return 21603, "From or MessagingServiceSid is required"
        if not (form.get("Body") or form.get("MediaUrl") or form.get("ContentSid")):
            return 21602, "Body, MediaUrl or ContentSid is required"
        return None

    def _resource(self, form: dict[str, list[str]]) -> dict:
        fields = {name: values if name == "MediaUrl" else values[0] for name, values in form.items()}
        sid = "SM" + uuid.uuid4().hex
        now = formatdate(usegmt=False)
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json"
        resource = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": fields.get("Body", ""),
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": fields.get("From"),
            "messaging_service_sid": fields.get("MessagingServiceSid"),
            "num_media": str(len(fields.get("MediaUrl", []))),
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": uri.removesuffix(".json") + "/Media.json"},
            "to": fields.get("To"),
            "uri": uri,
        }
        with self._lock:
            self.created.append(fields)
            self.resources.append(resource)
        return resource


def _matches(schema: dict, value: str) -> bool:
    """Whether a form value fits a (scalar) schema: pattern, lengths, URI format, JSON types."""
    if "pattern" in schema and not re.search(schema["pattern"], value):
        return False
    if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
        return False
    ignore_format = schema.get("x-twilio", {}).get("ignoreFormat", False)
    if schema.get("format") == "uri" and not ignore_format:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.netloc)
    kind = schema.get("type")
    if kind == "boolean":
        return value in ("true", "false", "True", "False")
    if kind == "integer":
        return re.fullmatch(r"-?\d+", value) is not None
    if kind == "number":
        return re.fullmatch(r"-?\d+(\.\d+)?", value) is not None
    return True
