"""Turn openapi-to-postmanv2's conversion of the API document into Thusa's Postman collection and environment.

``make postman`` runs it (docs/integrating.md): the converter writes a collection from the OpenAPI document with its
examples; this script makes it runnable, top to bottom, against ``make run``'s demo data:

- a first folder signs in the demo accounts (admin, staff, pharmacist, clinician) and stores their tokens in the
  environment;
- every request is named ``METHOD /api/v1/path`` as in the API document, and sends the token of a role allowed to
  call it (:data:`ROLES`);
- path parameters and ids in example bodies come from what earlier requests created or listed (:data:`CAPTURES`),
  so ``GET /api/v1/users/{user_id}`` reads the user ``POST /api/v1/users`` made, and the attendance is recorded for
  the demo's visit of yesterday, found in the appointments list;
- a request that needs what another one did runs right after it (:data:`AFTER`), or first waits until the worker
  has done it (:data:`WAIT`); what deletes, cancels or signs out runs last (:data:`LAST`);
- every request checks that it got one of its documented 2xx answers (:data:`EXPECTED` lists the two that cannot:
  their code goes by SMS, which a client cannot read).

Usage: ``python tools/postman.py CONVERTED.json OPENAPI.json OUT_DIR`` writes ``OUT_DIR/thusa.postman_collection.json``
and ``OUT_DIR/thusa.postman_environment.json``. Nothing here talks to the network.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.schemas import examples as ex  # noqa: E402 (the shared example ids become Postman variables)
from app.services.demo import PAST_APPOINTMENTS  # noqa: E402 (the demo visit whose attendance is recorded)

NAMESPACE = uuid.UUID("0b5e7d2c-4a61-4f0e-9c3d-7e8f9a0b1c2d")
PREFIX = "/api/v1/"

# Who calls what: by the first path segment after /api/v1/, unless the path or the method and path are listed.
ROLES = {
    "users": "admin", "clinics": "admin", "audit": "admin",
    "sms": "staff", "messages": "staff", "appointments": "staff", "patients": "staff", "reports": "staff",
    "stock": "staff",
    "notices": "staff",
    "consultations": "pharmacist", "analysis": "pharmacist", "medications": "pharmacist", "triage": "pharmacist",
    "reviews": "clinician", "/api/v1/reports/outcomes": "clinician",
    "/api/v1/auth/me": "staff", "/api/v1/auth/phone/verify": "registered", "/api/v1/auth/phone/confirm": "registered",
    "/api/v1/auth/chat-link": "pharmacist", "/api/v1/auth/refresh": "session_refresh",
    "/api/v1/auth/logout": "session", "DELETE /api/v1/patients/{patient_id}": "admin",
}  # fmt: skip

# The demo's visit of yesterday: attendance can be recorded only once a visit's time has passed (missed) or its day
# has come (attended), and every other visit of the demo data, or booked by the collection, is still to come.
PAST_REF = PAST_APPOINTMENTS[0][0]

# Environment variables set from an answer: (method, path) -> {variable: JavaScript expression on `body`}.
CAPTURES = {
    ("GET", "/api/v1/appointments"): {
        "past_appointment_id": f"(body.items.find(function (a) {{ return a.external_ref === {json.dumps(PAST_REF)}; }})"
        " || {}).id",
    },
    ("POST", "/api/v1/auth/login"): {"session_token": "body.access_token", "session_refresh": "body.refresh_token"},
    ("POST", "/api/v1/auth/refresh"): {"session_token": "body.access_token", "session_refresh": "body.refresh_token"},
    ("POST", "/api/v1/users"): {"new_user_id": "body.id"},
    ("POST", "/api/v1/clinics"): {"new_clinic_id": "body.id"},
    ("POST", "/api/v1/sms/send"): {"message_id": "body.id"},
    ("POST", "/api/v1/appointments"): {"appointment_id": "body.id", "patient_id": "body.patient_id"},
    ("POST", "/api/v1/appointments/bulk"): {"bulk_appointment_id": "body.results[0].id"},
    ("POST", "/api/v1/stock"): {"item_id": "body.id"},
    ("POST", "/api/v1/notices"): {"notice_id": "body.id"},
    ("POST", "/api/v1/consultations"): {"consultation_id": "body.id"},
    ("POST", "/api/v1/analysis/skin"): {"analysis_id": "body.id"},
    ("GET", "/api/v1/medications"): {"medication_id": "body.items[0].id"},
    ("POST", "/api/v1/consultations/{consultation_id}/review-request"): {"review_id": "body.id"},
    # the signed link's last segment: GET /api/v1/review-photos/{token} needs no bearer token
    ("GET", "/api/v1/reviews/{review_id}"): {"photo_token": 'body.photos[0].url.split("/").pop()'},
}

# Path parameters read from another variable than their own name.
PATH_VARIABLES = {
    ("DELETE", "/api/v1/appointments/{appointment_id}"): {"appointment_id": "bulk_appointment_id"},
    ("PUT", "/api/v1/appointments/{appointment_id}/attendance"): {"appointment_id": "past_appointment_id"},
    ("POST", "/api/v1/appointments/{appointment_id}/tracing"): {"appointment_id": "past_appointment_id"},
    "user_id": "new_user_id",
    "clinic_id": "new_clinic_id",
    "token": "photo_token",
}

# Ids of the examples that stand for an object of the demo data or made by an earlier request.
BODY_IDS = {ex.GABORONE_CLINIC: "{{clinic_id}}", ex.APPOINTMENT: "{{appointment_id}}", ex.STOCK_ITEM: "{{item_id}}"}

# Answers other than the documented 2xx ones: a code sent by SMS cannot be read by a client, so a wrong one is sent.
EXPECTED = {
    ("POST", "/api/v1/auth/password-reset/confirm"): [422],
    ("POST", "/api/v1/auth/phone/confirm"): [422],
}

# Run right after another request of the same folder (the converter orders them by path): the first needs what the
# second did. Tracing needs a missed visit: the attendance example marks the demo's past visit missed (already missed
# when the hourly mark-missed job came first: marking it again is allowed).
AFTER = {
    ("POST", "/api/v1/appointments/{appointment_id}/tracing"):
        ("PUT", "/api/v1/appointments/{appointment_id}/attendance"),
}  # fmt: skip

# Wait before sending until the worker has done what the request needs: (method, path) -> (the path to poll, the
# role polling it, a JavaScript condition on its answer's `body`). A review needs a triaged consultation, which the
# analysis job completes a moment after POST /api/v1/consultations. Polled every WAIT_MS, at most WAIT_TRIES times.
WAIT = {
    ("POST", "/api/v1/consultations/{consultation_id}/review-request"):
        ("/api/v1/consultations/{{consultation_id}}", "pharmacist", 'body.status === "completed"'),
}  # fmt: skip
WAIT_MS, WAIT_TRIES = 500, 60  # 30 seconds, well within the 100 requests a minute each user may make

# Run last, in this order: they delete, cancel or sign out what other requests use.
LAST = [
    ("DELETE", "/api/v1/appointments/{appointment_id}"),
    ("DELETE", "/api/v1/patients/{patient_id}"),
    ("DELETE", "/api/v1/users/{user_id}"),
    ("DELETE", "/api/v1/clinics/{clinic_id}"),
    ("POST", "/api/v1/auth/logout"),
]

FILES = {"file": "docs/examples/appointments.csv", "image": "docs/examples/photo.jpg"}

DEMO = {
    "admin": ("admin@thusa.example", "thusa-admin-demo"),
    "staff": ("staff@thusa.example", "thusa-staff-demo"),
    "pharmacist": ("pharmacist@thusa.example", "thusa-pharmacist-demo"),
    "clinician": ("clinician@thusa.example", "thusa-clinician-demo"),
}


def _requests(items: list[dict]):
    for item in items:
        if "item" in item:
            yield from _requests(item["item"])
        else:
            yield item


def _template(request: dict) -> str:
    """``/api/v1/users/{user_id}`` from the converter's ``api/v1/users/:user_id``."""
    parts = [f"{{{part[1:]}}}" if part.startswith(":") else part for part in request["url"]["path"]]
    return "/" + "/".join(parts)


def _strip_ids(node):
    if isinstance(node, dict):
        return {key: _strip_ids(value) for key, value in node.items() if key not in ("id", "_postman_id")}
    if isinstance(node, list):
        return [_strip_ids(value) for value in node]
    return node


def _bearer(variable: str) -> dict:
    return {"type": "bearer", "bearer": [{"key": "token", "value": f"{{{{{variable}}}}}", "type": "string"}]}


def _script(lines: list[str], listen: str = "test") -> dict:
    return {"listen": listen, "script": {"type": "text/javascript", "exec": lines}}


def _wait(path: str, role: str, condition: str) -> list[str]:
    """A pre-request script: poll ``path`` as ``role`` until ``condition`` holds on its JSON answer, or give up (the
    request is then sent anyway: its answer says why, and its check fails)."""
    return [
        "var tries = 0;",
        "function done(error, answer) {",
        "    if (error || answer.code !== 200) { return false; }",
        f"    try {{ var body = answer.json(); return Boolean({condition}); }} catch (e) {{ return false; }}",
        "}",
        "(function poll() {",
        f'    pm.sendRequest({{url: pm.variables.replaceIn("{{{{baseUrl}}}}{path}"), method: "GET",',
        f'                    header: {{Authorization: "Bearer " + pm.environment.get("{role}_token")}}}},',
        "                   function (error, answer) {",
        f"        if (!done(error, answer) && ++tries < {WAIT_TRIES}) {{ setTimeout(poll, {WAIT_MS}); }}",
        "    });",
        "})();",
    ]


def _checks(method: str, path: str, statuses: list[int], captures: dict[str, str]) -> list[str]:
    lines = [f'pm.test("{method} {path} answers {" or ".join(map(str, statuses))}", function () {{',
             f"    pm.expect(pm.response.code).to.be.oneOf({json.dumps(statuses)});", "});"]  # fmt: skip
    if captures:
        lines.append("if (pm.response.code < 300) {")
        lines.append("    var body = pm.response.json();")
        lines += [f'    pm.environment.set("{name}", {expression});' for name, expression in captures.items()]
        lines.append("}")
    return lines


# The pharmacist POST /auth/register makes signs in at once: a phone not yet proven, for POST /auth/phone/verify.
REGISTERED_SIGN_IN = [
    "if (pm.response.code === 201) {",
    "    var sent = JSON.parse(pm.request.body.raw);",
    '    pm.sendRequest({url: pm.environment.get("baseUrl") + "/api/v1/auth/login", method: "POST",',
    '                    header: {"Content-Type": "application/json"},',
    '                    body: {mode: "raw", raw: JSON.stringify({email: sent.email, password: sent.password})}},',
    '                   function (error, answer) { pm.environment.set("registered_token", answer.json().access_token); });',
    "}",
]


def _sign_in(role: str, email_password: tuple[str, str]) -> dict:
    body = {"email": f"{{{{{role}_email}}}}", "password": f"{{{{{role}_password}}}}"}
    lines = [f'pm.test("{role} signed in", function () {{ pm.response.to.have.status(200); }});',
             f'pm.environment.set("{role}_token", pm.response.json().access_token);']  # fmt: skip
    return {
        "name": f"Sign in as {role} ({email_password[0]})",
        "request": {
            "method": "POST",
            "header": [{"key": "Content-Type", "value": "application/json"}],
            "url": {"raw": "{{baseUrl}}/api/v1/auth/login", "host": ["{{baseUrl}}"], "path": ["api", "v1", "auth", "login"]},
            "body": {"mode": "raw", "raw": json.dumps(body, indent=2), "options": {"raw": {"language": "json"}}},
            "auth": {"type": "noauth"},
        },
        "event": [_script(lines)],
    }  # fmt: skip


def _clinic_lookup() -> dict:
    lines = ['pm.test("the demo clinics are listed", function () { pm.response.to.have.status(200); });',
             "var items = pm.response.json().items;",
             'var home = items.find(function (c) { return c.name === "Gaborone Main Clinic"; }) || items[0];',
             'pm.environment.set("clinic_id", home.id);']  # fmt: skip
    return {
        "name": "Find the Gaborone demo clinic",
        "request": {
            "method": "GET",
            "header": [{"key": "Accept", "value": "application/json"}],
            "url": {"raw": "{{baseUrl}}/api/v1/clinics?country=BW", "host": ["{{baseUrl}}"],
                    "path": ["api", "v1", "clinics"], "query": [{"key": "country", "value": "BW"}]},
            "auth": _bearer("admin_token"),
        },
        "event": [_script(lines)],
    }  # fmt: skip


def _role(method: str, path: str) -> str | None:
    for key in (f"{method} {path}", path):
        if key in ROLES:
            return ROLES[key]
    return ROLES.get(path[len(PREFIX) :].split("/")[0])


def _fix_request(item: dict, method: str, path: str, spec_operation: dict) -> dict:
    request = item["request"]
    role = _role(method, path)
    if role is None:
        request["auth"] = {"type": "noauth"}
    else:
        request["auth"] = _bearer(role if role == "session_refresh" else f"{role}_token")
    for variable in request["url"].get("variable", []):
        name = variable["key"]
        own = PATH_VARIABLES.get((method, path), {})
        variable["value"] = "{{" + own.get(name, PATH_VARIABLES.get(name, name)) + "}}"
    body = request.get("body") or {}
    if body.get("mode") == "raw":
        for example_id, variable in BODY_IDS.items():
            body["raw"] = body["raw"].replace(example_id, variable)
    for part in body.get("formdata", []):
        if part.get("type") == "file":
            part["src"] = FILES[part["key"]]
        elif part["key"] == "red_flags":
            part["value"] = ""  # one empty part: none of the red flags
    statuses = EXPECTED.get((method, path)) or sorted(int(code) for code in spec_operation["responses"]
                                                      if code.startswith("2"))  # fmt: skip
    # The converter fills optional query parameters with random values: the document's example or default instead
    # (they are off until a user ticks them), so the collection is the same at each `make postman`.
    documented = {}
    for parameter in spec_operation.get("parameters", []):
        schema = parameter.get("schema", {})
        documented[parameter["name"]] = parameter.get("example", schema.get("example", schema.get("default", "")))
    for query in request["url"].get("query", []):
        value = documented.get(query["key"], "")
        query["value"] = json.dumps(value) if isinstance(value, bool) else str(value)
    # The documented answers stay as Postman examples; the error ones all look alike, so only the 2xx are kept.
    item["response"] = [{key: value for key, value in answer.items() if key != "originalRequest"}
                        for answer in item.get("response", []) if 200 <= answer.get("code", 0) < 300]  # fmt: skip
    item["name"] = f"{method} {path}"
    item["request"]["description"] = spec_operation.get("summary") or spec_operation.get("description") or ""
    lines = _checks(method, path, statuses, CAPTURES.get((method, path), {}))
    if (method, path) == ("POST", "/api/v1/auth/register"):
        lines += REGISTERED_SIGN_IN
    item["event"] = [_script(lines)]
    if (method, path) in WAIT:
        item["event"].insert(0, _script(_wait(*WAIT[(method, path)]), "prerequest"))
    return item


def build(converted: dict, spec: dict) -> tuple[dict, dict]:
    """The collection and the environment, from the converter's collection and the API document."""
    by_key: dict[tuple[str, str], dict] = {}
    folders: dict[str, list[dict]] = {}
    for item in _requests(converted["item"]):
        method, path = item["request"]["method"], _template(item["request"])
        operation = spec["paths"][path][method.lower()]
        fixed = _fix_request(item, method, path, operation)
        by_key[(method, path)] = fixed
        if (method, path) not in LAST:
            folders.setdefault(path[len(PREFIX) :].split("/")[0], []).append(fixed)
    missing = [key for key in [*LAST, *AFTER, *AFTER.values(), *WAIT] if key not in by_key]
    if missing:
        raise SystemExit(f"tools/postman.py: these operations are gone from the API document: {missing}")
    for key, previous in AFTER.items():
        folder = folders[key[1][len(PREFIX) :].split("/")[0]]
        folder.remove(by_key[key])
        folder.insert(folder.index(by_key[previous]) + 1, by_key[key])
    sign_in = [_sign_in(role, account) for role, account in DEMO.items()] + [_clinic_lookup()]
    collection = {
        "info": {
            "_postman_id": str(uuid.uuid5(NAMESPACE, "thusa")),
            "name": spec["info"]["title"],
            "description": "Generated from the OpenAPI document by `make postman` (docs/integrating.md). Select the "
            "environment `Thusa make run`, start `make run`, then run the collection from the top: it signs in the "
            "demo accounts, then calls every operation with the examples of the API document.",
            "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json",
        },
        "item": [{"name": "Sign in (run first)", "item": sign_in}]
        + [{"name": name, "item": _strip_ids(items)} for name, items in folders.items()]
        + [{"name": "Clean up (run last)", "item": _strip_ids([by_key[key] for key in LAST])}],
        "variable": [],
    }  # fmt: skip
    values = [{"key": "baseUrl", "value": "http://127.0.0.1:5000", "type": "default", "enabled": True}]
    for role, (email, password) in DEMO.items():
        values += [{"key": f"{role}_email", "value": email, "type": "default", "enabled": True},
                   {"key": f"{role}_password", "value": password, "type": "secret", "enabled": True},
                   {"key": f"{role}_token", "value": "", "type": "secret", "enabled": True}]  # fmt: skip
    environment = {
        "id": str(uuid.uuid5(NAMESPACE, "make-run")),
        "name": "Thusa make run",
        "values": values,
        "_postman_variable_scope": "environment",
    }
    return collection, environment


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__.split("\n\n")[-2], file=sys.stderr)
        return 2
    converted = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    spec = json.loads(Path(argv[2]).read_text(encoding="utf-8"))
    collection, environment = build(converted, spec)
    out = Path(argv[3])
    out.mkdir(parents=True, exist_ok=True)
    for name, document in (
        ("thusa.postman_collection.json", collection),
        ("thusa.postman_environment.json", environment),
    ):
        (out / name).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
