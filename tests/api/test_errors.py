"""One JSON error shape for every 4xx/5xx; validation names each bad field; no 500 on malformed input."""

from __future__ import annotations

import re

import pytest

from app.extensions import db
from app.models import Clinic
from tests.conftest import bearer


def _shape(response) -> dict:
    assert response.is_json, response.data[:200]
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["message"]
    return body["error"]


def test_unknown_url_is_404_json(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404 and _shape(response)["code"] == "not_found"


def test_wrong_method_is_405_json_with_allow(client):
    response = client.put("/api/v1/auth/login")
    assert response.status_code == 405 and _shape(response)["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize(
    ("data", "content_type"),
    [("{not json", "application/json"), ("[1, 2]", "application/json"), ("null", "application/json"),
     ("email=a", "application/x-www-form-urlencoded"), ("\xff\xfe", "application/json")],
    ids=["broken", "array", "null", "form", "bad-bytes"],
)  # fmt: skip
def test_malformed_bodies_are_4xx_never_500(client, people, data, content_type):
    response = client.post("/api/v1/clinics", data=data, content_type=content_type,
                           headers=bearer(people["tokens"]["admin"]))  # fmt: skip
    assert 400 <= response.status_code < 500
    _shape(response)
    assert db.session.query(Clinic).count() == 2  # nothing written


def test_validation_names_every_bad_and_unknown_field(client, people):
    response = client.post(
        "/api/v1/clinics",
        json={"name": "", "country": "ZA", "timezone": "Mars/Olympus", "default_language": "fr", "beds": 12},
        headers=bearer(people["tokens"]["admin"]),
    )
    assert response.status_code == 422
    error = _shape(response)
    assert error["code"] == "validation_error"
    assert set(error["details"]["json"]) == {"name", "country", "timezone", "default_language", "beds"}
    assert error["details"]["json"]["beds"] == ["Unknown field."]


def test_unknown_query_parameters_are_rejected(client, people):
    response = client.get("/api/v1/clinics?color=red", headers=bearer(people["tokens"]["admin"]))
    assert response.status_code == 422
    assert "color" in _shape(response)["details"]["query"]


def test_pagination_caps_per_page_at_100(client, people):
    headers = bearer(people["tokens"]["admin"])
    assert client.get("/api/v1/clinics?per_page=101", headers=headers).status_code == 422
    assert client.get("/api/v1/clinics?page=0", headers=headers).status_code == 422
    body = client.get("/api/v1/clinics?per_page=1&page=2", headers=headers).get_json()
    assert (body["page"], body["per_page"], body["total"], body["pages"], len(body["items"])) == (2, 1, 2, 2, 1)
    beyond = client.get("/api/v1/clinics?per_page=1&page=9", headers=headers).get_json()
    assert beyond["items"] == [] and beyond["total"] == 2


def test_body_over_max_content_length_is_413_json(app_factory):
    client = app_factory(MAX_CONTENT_LENGTH=1024).test_client()
    response = client.post("/api/v1/auth/login", data="x" * 4096, content_type="application/json")
    assert response.status_code == 413 and _shape(response)["code"] == "payload_too_large"


def test_non_uuid_ids_are_404_not_500(client, people):
    response = client.get("/api/v1/clinics/not-a-uuid", headers=bearer(people["tokens"]["admin"]))
    assert response.status_code == 404
    _shape(response)


def test_unexpected_errors_are_500_json_without_internals(app_factory):
    app = app_factory()

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    error = _shape(response)
    assert error["code"] == "internal_error" and "secret" not in error["message"]


def test_security_headers_on_api_and_docs(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and "swagger" in docs.get_data(as_text=True).lower()
    policy = docs.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "https:" not in policy and "cdn" not in policy
    assert "<script>" not in docs.get_data(as_text=True)  # no inline script: the policy can refuse them


def test_swagger_ui_assets_are_served_by_the_app(client):
    page = client.get("/api/v1/docs").get_data(as_text=True)
    links = re.findall(r'(?:src|href|data-spec-url)="([^"]*)"', page)
    assert len(links) == 5 and all(link.startswith("/api/v1/") for link in links), links
    for path in ("/api/v1/docs/assets/swagger-ui-bundle.js", "/api/v1/docs/assets/swagger-ui.css",
                 "/api/v1/docs/init.js"):  # fmt: skip
        response = client.get(path)
        assert response.status_code == 200 and len(response.data) > 100, path
    assert client.get("/api/v1/docs/assets/../../../app/config.py").status_code == 404
    assert client.get("/api/v1/docs/assets/nothing.js").status_code == 404


def test_cors_only_for_allowed_origins(app_factory, monkeypatch):
    client = app_factory(CORS_ORIGINS=["https://admin.thusa.example"]).test_client()
    allowed = client.get("/api/v1/openapi.json", headers={"Origin": "https://admin.thusa.example"})
    assert allowed.headers.get("Access-Control-Allow-Origin") == "https://admin.thusa.example"
    denied = client.get("/api/v1/openapi.json", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in denied.headers
