"""``GET /api/v1/audit``: the audit log for admins, newest first, filtered. Runs on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.extensions import db
from app.models import AuditLog
from tests.conftest import bearer

BASE = "/api/v1/audit"


def headers(people, who: str = "admin") -> dict:
    return bearer(people["tokens"][who])


@pytest.fixture
def trail(people):
    """Five audit rows at known times, in 2031 (after the people fixture's logins)."""
    staff, admin = people["users"]["staff"].id, people["users"]["admin"].id
    rows = {
        "read": AuditLog(actor_id=staff, action="patient.read", entity_type="patient", entity_id="p1",
                         at=datetime(2031, 3, 4, 8, 0, tzinfo=UTC), details={"view": "one"}),
        "erase": AuditLog(actor_id=admin, action="patient.erase", entity_type="patient", entity_id="p1",
                          at=datetime(2031, 3, 4, 9, 0, tzinfo=UTC), remote_addr="127.0.0.1"),
        "cancel": AuditLog(actor_id=staff, action="appointment.cancel", entity_type="appointment", entity_id="a1",
                           at=datetime(2031, 3, 5, 0, 30, tzinfo=UTC)),
        "system": AuditLog(actor_id=None, action="appointment.attendance", entity_type="appointment",
                           entity_id="a1", at=datetime(2031, 3, 6, 1, 0, tzinfo=UTC)),
        "old": AuditLog(actor_id=admin, action="clinic.update", entity_type="clinic", entity_id=None,
                        at=datetime(2031, 1, 1, 0, 0, tzinfo=UTC)),
    }  # fmt: skip
    db.session.add_all(rows.values())
    db.session.commit()
    return {name: str(row.id) for name, row in rows.items()}


def listed(client, people, trail, **query) -> list[str]:
    """The ids of the trail's rows in the answer (the fixture's logins are audited too)."""
    response = client.get(BASE, query_string=query, headers=headers(people))
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"] if item["id"] in trail.values()]


@pytest.mark.parametrize(("query", "expected"), [
    ({}, ["system", "cancel", "erase", "read", "old"]),
    ({"actor_id": "staff"}, ["cancel", "read"]),
    ({"action": "patient.erase"}, ["erase"]),
    ({"entity_type": "appointment"}, ["system", "cancel"]),
    ({"entity_id": "p1"}, ["erase", "read"]),
    ({"from": "2031-03-05"}, ["system", "cancel"]),
    ({"from": "2031-03-04", "to": "2031-03-04"}, ["erase", "read"]),  # a date: a whole UTC day
    ({"from": "2031-03-04T08:30:00Z", "to": "2031-03-05T00:30:00Z"}, ["erase"]),  # "to" excluded
    ({"to": "2031-03-04T09:00"}, ["read", "old"]),  # no offset: UTC
    ({"action": "patient.read", "entity_type": "clinic"}, []),
])  # fmt: skip
def test_filters_newest_first(client, people, trail, query, expected):
    if "actor_id" in query:
        query = {**query, "actor_id": str(people["users"][query["actor_id"]].id)}

    assert listed(client, people, trail, **query) == [trail[name] for name in expected]


def test_an_entry_shows_every_field(client, people, trail):
    [entry] = client.get(BASE, query_string={"action": "patient.erase"}, headers=headers(people)).get_json()["items"]

    assert entry == {"id": trail["erase"], "actor_id": str(people["users"]["admin"].id), "action": "patient.erase",
                     "entity_type": "patient", "entity_id": "p1", "at": "2031-03-04T09:00:00+00:00",
                     "remote_addr": "127.0.0.1", "details": {}}  # fmt: skip


def test_reads_through_the_api_show_up(client, people):
    client.get("/api/v1/appointments", headers=headers(people, "staff"))

    [entry] = client.get(BASE, query_string={"action": "appointment.read"}, headers=headers(people)).get_json()["items"]
    assert entry["actor_id"] == str(people["users"]["staff"].id)
    assert entry["details"] == {"view": "list", "filters": [], "count": 0}


@pytest.mark.parametrize("who", ["staff", "viewer", "other_staff", "pharmacist"])
def test_only_admins_read_the_audit_log(client, people, who):
    assert client.get(BASE, headers=headers(people, who)).status_code == 403


@pytest.mark.parametrize(("query", "field"), [
    ({"actor_id": "me"}, "actor_id"), ({"from": "yesterday"}, "from"), ({"to": "2031-13-01"}, "to"),
    ({"action": ""}, "action"), ({"entity_id": "x" * 65}, "entity_id"), ({"entity_type": "a\x00"}, "entity_type"),
    ({"per_page": 0}, "per_page"), ({"who": "me"}, "who"),
])  # fmt: skip
def test_query_errors_are_422_naming_the_parameter(client, people, query, field):
    response = client.get(BASE, query_string=query, headers=headers(people))

    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]["query"]


def test_pagination(client, people, trail):
    query = {"per_page": 1, "entity_type": "patient"}
    first = client.get(BASE, query_string={**query, "page": 1}, headers=headers(people)).get_json()
    beyond = client.get(BASE, query_string={**query, "page": 3}, headers=headers(people)).get_json()

    assert (first["total"], first["pages"], [i["id"] for i in first["items"]]) == (2, 2, [trail["erase"]])
    assert beyond["items"] == []
