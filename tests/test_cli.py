"""Flask commands: users create, seed-demo, worker."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Appointment, Clinic, Message, User, utcnow
from app.services import appointments
from app.services.demo import ACCOUNTS, APPOINTMENTS, CLINICS, PAST_APPOINTMENTS
from app.services.upkeep import mark_missed

# `make run` seeds the embedded default (SQLite); production runs PostgreSQL
pytestmark = pytest.mark.both_backends


def test_users_create_takes_the_password_from_the_environment(runner, monkeypatch):
    monkeypatch.setenv("THUSA_PASSWORD", "a-strong-cli-password")
    result = runner.invoke(args=["users", "create", "--email", "Root@Example.org", "--role", "admin",
                                 "--phone", "+26771111222", "--name", "Root"])  # fmt: skip
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.email == "root@example.org"))
    assert (user.role, user.phone, user.name) == ("admin", "+26771111222", "Root")
    assert "a-strong-cli-password" not in result.output


def test_users_create_prompts_for_the_password_when_not_in_the_environment(runner, monkeypatch):
    monkeypatch.delenv("THUSA_PASSWORD", raising=False)
    clinic = Clinic(name="Mochudi Clinic", country="BW", timezone="Africa/Gaborone", default_language="tn")
    db.session.add(clinic)
    db.session.commit()
    result = runner.invoke(args=["users", "create", "--email", "s@example.org", "--role", "staff",
                                 "--clinic", str(clinic.id)], input="another-good-one-9\nanother-good-one-9\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert db.session.scalar(select(User.clinic_id).where(User.email == "s@example.org")) == clinic.id


def test_users_create_explains_what_is_wrong(runner, monkeypatch):
    monkeypatch.setenv("THUSA_PASSWORD", "password")
    result = runner.invoke(args=["users", "create", "--email", "x@example.org", "--role", "staff"])
    assert result.exit_code != 0
    assert "password" in result.output.lower()
    monkeypatch.setenv("THUSA_PASSWORD", "good-enough-password-1")
    result = runner.invoke(args=["users", "create", "--email", "x@example.org", "--role", "staff"])
    assert result.exit_code != 0 and "clinic" in result.output
    result = runner.invoke(args=["users", "create", "--email", "x@example.org", "--role", "admin", "--phone", "12"])
    assert result.exit_code != 0 and "international" in result.output


def test_seed_demo_is_idempotent_and_prints_the_sign_ins(runner):
    first = runner.invoke(args=["seed-demo"])
    second = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0 and second.exit_code == 0, first.output
    assert db.session.scalar(select(func.count()).select_from(Clinic)) == len(CLINICS)
    assert db.session.scalar(select(func.count()).select_from(User)) == len(ACCOUNTS)
    for email, password, *_ in ACCOUNTS:
        assert email in first.output and password in first.output
    gaborone = db.session.scalar(select(Clinic).where(Clinic.timezone == "Africa/Gaborone"))
    assert gaborone.country == "BW"
    staff = db.session.scalars(select(User).where(User.role == "staff")).all()
    assert gaborone.id in {user.clinic_id for user in staff}
    booked = db.session.scalars(select(Appointment)).all()
    assert sorted(a.external_ref for a in booked) == sorted(ref for ref, *_ in APPOINTMENTS + PAST_APPOINTMENTS)
    assert {a.clinic_id for a in booked} == {gaborone.id}
    assert all(a.next_reminder_at is not None or a.appointment_datetime - utcnow() < timedelta(days=1) for a in booked)
    assert db.session.scalar(select(func.count()).select_from(Message)) == 0  # booking sends nothing by itself


def test_the_demo_visit_of_yesterday_can_be_marked_missed_even_after_the_hourly_job(client, runner):
    runner.invoke(args=["seed-demo"])
    [(ref, phone, *_)] = PAST_APPOINTMENTS
    visit = db.session.scalar(select(Appointment).where(Appointment.external_ref == ref))
    gaborone = db.session.get(Clinic, visit.clinic_id)
    yesterday = (appointments.local_time(gaborone, utcnow()) - timedelta(days=1)).date()
    local = appointments.local_time(gaborone, visit.appointment_datetime)
    assert (local.date(), local.time()) == (yesterday, time(10, 0))
    assert (visit.patient.phone, visit.status, visit.next_reminder_at) == (phone, "scheduled", None)

    assert mark_missed(utcnow()) == 1  # `make run`'s hourly job may come first
    owed = db.session.get(Appointment, visit.id, populate_existing=True).recovery_at
    token = client.post("/api/v1/auth/login", json={"email": "staff@thusa.example", "password": "thusa-staff-demo"})
    response = client.put(f"/api/v1/appointments/{visit.id}/attendance", json={"attended": False},
                          headers={"Authorization": f"Bearer {token.get_json()['access_token']}"})  # fmt: skip

    assert response.status_code == 200 and response.get_json()["status"] == "missed"
    assert db.session.get(Appointment, visit.id, populate_existing=True).recovery_at == owed  # nothing new owed


def test_demo_accounts_can_sign_in(client, runner):
    runner.invoke(args=["seed-demo"])
    for email, password, *_ in ACCOUNTS:
        assert client.post("/api/v1/auth/login", json={"email": email, "password": password}).status_code == 200


def test_seed_demo_refuses_production(app_factory, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "a" * 40)
    monkeypatch.setenv("JWT_SECRET_KEY", "b" * 40)
    result = app_factory(THUSA_ENV="production").test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code != 0 and "production" in result.output


def test_worker_rejects_unknown_queues_and_runs_in_burst_mode(runner):
    bad = runner.invoke(args=["worker", "--queue", "nope"])
    assert bad.exit_code != 0 and "unknown queue" in bad.output
    result = runner.invoke(args=["worker", "--burst", "--queue", "default"])
    assert result.exit_code == 0, result.output
