"""The OpenAPI document: every endpoint with schemas, security and error responses."""

from __future__ import annotations


def _operations(spec: dict):
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method != "parameters":
                yield path, method, operation


def test_document_lists_the_auth_users_and_clinics_endpoints(client):
    paths = {path for path, *_ in _operations(client.get("/api/v1/openapi.json").get_json())}
    assert {"/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/logout", "/api/v1/auth/register",
            "/api/v1/auth/password-reset", "/api/v1/auth/password-reset/confirm", "/api/v1/users",
            "/api/v1/users/{user_id}", "/api/v1/clinics", "/api/v1/clinics/{clinic_id}"} <= paths  # fmt: skip


def test_every_operation_documents_its_errors_in_the_one_shape(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    for path, method, operation in _operations(spec):
        responses = operation["responses"]
        assert "429" in responses, (method, path)
        if "requestBody" in operation:
            assert {"400", "413", "422"} <= set(responses), (method, path)
        if operation.get("security"):
            assert {"401", "503"} <= set(responses), (method, path)
    error = spec["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["$ref"].endswith("/ErrorBody")
    assert set(spec["components"]["schemas"]["ErrorBody"]["required"]) == {"code", "message", "details"}


def test_bearer_security_scheme_is_declared(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer",
                                                                   "bearerFormat": "JWT"}  # fmt: skip
