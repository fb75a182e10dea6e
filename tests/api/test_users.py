"""Account administration: role rules, updates, deactivation, audit trail."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import AuditLog, User
from tests.conftest import PASSWORD, bearer, login


@pytest.fixture
def admin(people):
    return bearer(people["tokens"]["admin"])


def _new(people, **fields) -> dict:
    body = {"email": "new.person@example.org", "password": "a-long-new-secret-1", "role": "staff",
            "clinic_id": str(people["home"].id), "phone": "+26772000001", "name": "Lesedi"}  # fmt: skip
    body.update(fields)
    return body


def test_admin_creates_a_staff_account_that_can_sign_in(client, people, admin):
    response = client.post("/api/v1/users", json=_new(people), headers=admin)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert (created["role"], created["clinic_id"], created["active"]) == ("staff", str(people["home"].id), True)
    assert client.post("/api/v1/auth/login", json={"email": "new.person@example.org",
                                                   "password": "a-long-new-secret-1"}).status_code == 200  # fmt: skip
    row = db.session.query(AuditLog).filter_by(action="user.create", entity_id=created["id"]).one()
    assert row.actor_id == people["users"]["admin"].id and row.remote_addr == "127.0.0.1"
    assert "password" not in str(row.details)


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"role": "staff", "clinic_id": None}, "clinic_id"),
        ({"role": "viewer", "clinic_id": None}, "clinic_id"),
        ({"role": "admin"}, "clinic_id"),  # an admin belongs to no clinic
        ({"role": "pharmacist", "clinic_id": None}, "pharmacy_name"),
        ({"clinic_id": "00000000-0000-0000-0000-000000000000"}, "clinic_id"),
    ],
)
def test_role_fields_must_fit_the_role(client, people, admin, fields, bad_field):
    response = client.post("/api/v1/users", json=_new(people, **fields), headers=admin)
    assert response.status_code == 422
    assert bad_field in response.get_json()["error"]["details"]["json"]
    assert db.session.query(User).filter_by(email="new.person@example.org").count() == 0


@pytest.mark.parametrize("field", ["email", "phone"])
def test_email_and_phone_are_unique(client, people, admin, field):
    taken = {"email": people["users"]["staff"].email.upper(), "phone": people["users"]["staff"].phone}[field]
    response = client.post("/api/v1/users", json=_new(people, **{field: taken}), headers=admin)
    assert response.status_code == 409
    assert field in response.get_json()["error"]["details"]["json"]


def test_list_filters_and_paginates(client, people, admin):
    body = client.get("/api/v1/users?role=staff&per_page=1", headers=admin).get_json()
    assert body["total"] == 2 and len(body["items"]) == 1 and body["pages"] == 2
    home = client.get(f"/api/v1/users?clinic_id={people['home'].id}", headers=admin).get_json()
    assert {u["role"] for u in home["items"]} == {"staff", "viewer"}
    by_email = client.get(f"/api/v1/users?email={people['users']['viewer'].email.upper()}", headers=admin).get_json()
    assert [u["id"] for u in by_email["items"]] == [str(people["users"]["viewer"].id)]


def test_patch_changes_only_what_is_sent_and_moving_to_admin_drops_the_clinic(client, people, admin):
    staff = people["users"]["staff"]
    response = client.patch(f"/api/v1/users/{staff.id}", json={"name": "Neo M.", "language": "tn"}, headers=admin)
    assert response.status_code == 200
    assert (response.get_json()["name"], response.get_json()["phone"]) == ("Neo M.", staff.phone)
    promoted = client.patch(f"/api/v1/users/{staff.id}", json={"role": "admin"}, headers=admin).get_json()
    assert (promoted["role"], promoted["clinic_id"]) == ("admin", None)


def test_new_password_signs_the_user_out_everywhere(client, people, admin):
    staff = people["users"]["staff"]
    old_token = people["tokens"]["staff"]
    response = client.patch(f"/api/v1/users/{staff.id}", json={"password": "brand-new-secret-42"}, headers=admin)
    assert response.status_code == 200
    assert client.get("/api/v1/auth/me", headers=bearer(old_token)).status_code == 401
    assert client.post("/api/v1/auth/login", json={"email": staff.email, "password": PASSWORD}).status_code == 401
    assert login(client, staff, "brand-new-secret-42")["access_token"]


def test_delete_deactivates_and_keeps_the_account(client, people, admin):
    viewer, token = people["users"]["viewer"], people["tokens"]["viewer"]  # signed in before the deactivation
    response = client.delete(f"/api/v1/users/{viewer.id}", headers=admin)
    assert response.status_code == 200 and response.get_json()["active"] is False
    assert db.session.get(User, viewer.id) is not None
    assert client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 401
    assert db.session.query(AuditLog).filter_by(action="user.deactivate", entity_id=str(viewer.id)).count() == 1


def test_admin_cannot_deactivate_themself(client, people, admin):
    response = client.delete(f"/api/v1/users/{people['users']['admin'].id}", headers=admin)
    assert response.status_code == 409


def test_unknown_user_is_404(client, admin):
    assert client.get("/api/v1/users/00000000-0000-0000-0000-000000000001", headers=admin).status_code == 404
