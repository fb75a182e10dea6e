"""Clinics: admin CRUD, staff and viewers read their own."""

from __future__ import annotations

import uuid

from app.extensions import db
from app.models import AuditLog, Clinic
from tests.conftest import bearer


def test_admin_creates_updates_and_deletes_a_clinic(client, people):
    admin = bearer(people["tokens"]["admin"])
    body = {"name": "Tlokweng Clinic 2", "country": "BW", "timezone": "Africa/Gaborone", "default_language": "tn"}
    created = client.post("/api/v1/clinics", json=body, headers=admin)
    assert created.status_code == 201
    clinic_id = created.get_json()["id"]
    patched = client.patch(f"/api/v1/clinics/{clinic_id}", json={"name": "Tlokweng Health Post"}, headers=admin)
    assert patched.status_code == 200 and patched.get_json()["timezone"] == "Africa/Gaborone"
    assert client.delete(f"/api/v1/clinics/{clinic_id}", headers=admin).status_code == 204
    assert db.session.get(Clinic, uuid.UUID(clinic_id)) is None
    actions = {row.action for row in db.session.query(AuditLog).filter_by(entity_id=clinic_id)}
    assert actions == {"clinic.create", "clinic.update", "clinic.delete"}


def test_a_clinic_with_accounts_cannot_be_deleted(client, people):
    response = client.delete(f"/api/v1/clinics/{people['home'].id}", headers=bearer(people["tokens"]["admin"]))
    assert response.status_code == 409
    assert "account" in response.get_json()["error"]["message"]


def test_staff_and_viewers_see_only_their_own_clinic(client, people):
    for who in ("staff", "viewer"):
        body = client.get("/api/v1/clinics", headers=bearer(people["tokens"][who])).get_json()
        assert [c["id"] for c in body["items"]] == [str(people["home"].id)] and body["total"] == 1
    other = client.get(f"/api/v1/clinics/{people['other'].id}", headers=bearer(people["tokens"]["staff"]))
    assert other.status_code == 403


def test_country_filter(client, people):
    body = client.get("/api/v1/clinics?country=GH", headers=bearer(people["tokens"]["admin"])).get_json()
    assert [c["name"] for c in body["items"]] == ["Kumasi Clinic"]
