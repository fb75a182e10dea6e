"""The examples of the OpenAPI document (app/schemas/examples.py says where they live).

Every request body and every 2xx/4xx answer with a body of every ``/api/v1`` operation has an example, and every
example in the document is valid against the schema it stands beside: Swagger UI shows them, the mock server
answers with them and the Postman collection sends them, so a wrong one misleads every integrator at once.
"""

from __future__ import annotations

import copy
import re

import jsonschema_rs
import pytest

from app import create_app
from tests.conftest import TEST_REDIS_URL

HINT = ("add `class Meta: example = {...}` to the schema (app/schemas/examples.py explains; an error status takes "
        "its example from ERRORS there)")  # fmt: skip
REF = "#/components/schemas/"


@pytest.fixture(scope="module")
def spec() -> dict:
    app = create_app({"THUSA_ENV": "test", "DATABASE_URL": "sqlite://", "REDIS_URL": TEST_REDIS_URL})
    return app.test_client().get("/api/v1/openapi.json").get_json()


def _operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield f"{method.upper()} {path}", operation


def _resolve(spec: dict, node: dict) -> dict:
    while "$ref" in node:
        _, section, kind, name = node["$ref"].split("/")
        node = spec[section][kind][name]
    return node


def _json_schema(node):
    """OpenAPI 3.0's schema dialect as JSON Schema (draft 4): ``nullable`` becomes a null alternative, refs point
    into ``definitions``, ``example`` is dropped."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _json_schema(value) for key, value in node.items() if key not in ("example", "nullable")}
    if "$ref" in out:
        out["$ref"] = out["$ref"].replace(REF, "#/definitions/")
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def _validate(spec: dict, schema: dict, example, where: str) -> list[str]:
    document = {**_json_schema(schema), "definitions": _json_schema(spec["components"]["schemas"])}
    validator = jsonschema_rs.Draft4Validator(document, validate_formats=True)
    return [f"{where}: {error.message} at {list(error.instance_path)}" for error in validator.iter_errors(example)]


def _example_of(spec: dict, media: dict):
    if "example" in media:
        return media["example"]
    if media.get("examples"):
        return next(iter(media["examples"].values()))["value"]
    return _resolve(spec, media.get("schema", {})).get("example")


def _every_example(spec: dict):
    """(where, schema, example) for every example in the document: schemas, their properties, media types."""

    def walk(schema: dict, where: str):
        if "example" in schema:
            yield where, schema, schema["example"]
        for name, prop in schema.get("properties", {}).items():
            yield from walk(prop, f"{where}.{name}")
        if isinstance(schema.get("items"), dict):
            yield from walk(schema["items"], f"{where}[]")

    for name, schema in spec["components"]["schemas"].items():
        yield from walk(schema, name)
    for label, operation in _operations(spec):
        bodies = [("request", operation.get("requestBody", {}))]
        bodies += [(status, _resolve(spec, answer)) for status, answer in operation["responses"].items()]
        for status, body in bodies:
            for content_type, media in body.get("content", {}).items():
                if "example" in media:
                    yield f"{label} {status} {content_type}", media.get("schema", {}), media["example"]
                for key, named in media.get("examples", {}).items():
                    yield f"{label} {status} {content_type} {key}", media.get("schema", {}), named["value"]


def test_every_request_body_and_2xx_4xx_answer_has_an_example(spec):
    missing = []
    for label, operation in _operations(spec):
        for content_type, media in operation.get("requestBody", {}).get("content", {}).items():
            if _example_of(spec, media) is None:
                missing.append(f"{label} request {content_type} ({media.get('schema', {}).get('$ref', 'inline')})")
        for status, answer in operation["responses"].items():
            if status[0] not in "24":
                continue
            for content_type, media in _resolve(spec, answer).get("content", {}).items():
                if _example_of(spec, media) is None:
                    missing.append(f"{label} {status} {content_type} ({media.get('schema', {}).get('$ref', 'inline')})")
    assert missing == [], f"{HINT}:\n" + "\n".join(missing)


def test_every_example_is_valid_against_its_schema(spec):
    problems = []
    count = 0
    for where, schema, example in _every_example(spec):
        count += 1
        problems += _validate(spec, schema, example, where)
    assert problems == [], "\n".join(problems)
    assert count > 60


def test_requests_show_no_read_only_field_and_answers_no_write_only_one(spec):
    problems = []
    for label, operation in _operations(spec):
        sides = [("request", operation.get("requestBody", {}), "readOnly")]
        sides += [(status, _resolve(spec, answer), "writeOnly") for status, answer in operation["responses"].items()]
        for side, body, forbidden in sides:
            for media in body.get("content", {}).values():
                schema, example = _resolve(spec, media.get("schema", {})), _example_of(spec, media)
                if isinstance(example, dict):
                    for name, prop in schema.get("properties", {}).items():
                        if prop.get(forbidden) and name in example:
                            problems.append(f"{label} {side}: {name} is {forbidden}")
    assert problems == [], "\n".join(problems)


def test_example_numbers_are_from_botswana_or_ghana(spec):
    numbers = set()

    def collect(value) -> None:
        if isinstance(value, str) and re.fullmatch(r"\+\d{8,15}", value):
            numbers.add(value)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    for _where, _schema, example in _every_example(spec):
        collect(copy.deepcopy(example))
    assert numbers, "no phone number in any example"
    assert all(number.startswith(("+267", "+233")) for number in numbers), numbers
