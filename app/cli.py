"""Flask commands: ``users create``, ``seed-demo``, ``worker`` (plus Flask-Migrate's ``db``)."""

from __future__ import annotations

import os

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from app.errors import ServiceError
from app.models.user import ROLES

users_cli = AppGroup("users", help="Manage accounts.")


@users_cli.command("create")
@click.option("--email", required=True, help="Sign-in email (unique).")
@click.option("--role", required=True, type=click.Choice(ROLES), help="admin, staff, viewer or pharmacist.")
@click.option("--clinic", "clinic_id", help="Clinic id (required for staff and viewer).")
@click.option("--phone", help="Phone in E.164, e.g. +26771234567.")
@click.option("--name", default="", help="Display name.")
@click.option("--pharmacy", "pharmacy_name", help="Pharmacy name (required for pharmacist).")
@click.option("--language", type=click.Choice(["en", "tn"]), default="en", show_default=True)
def create_user_command(email, role, clinic_id, phone, name, pharmacy_name, language):
    """Create an account. The password comes from THUSA_PASSWORD, or is asked for (hidden)."""
    import uuid

    from app.services.phones import to_e164
    from app.services.users import create_user

    password = os.environ.get("THUSA_PASSWORD") or click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        data = {
            "email": email,
            "password": password,
            "role": role,
            "name": name,
            "phone": to_e164(phone) if phone else None,
            "clinic_id": uuid.UUID(clinic_id) if clinic_id else None,
            "pharmacy_name": pharmacy_name,
            "language": language,
        }
        user = create_user(None, data)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    except ServiceError as exc:
        raise click.ClickException(f"{exc.message} {exc.details or ''}".strip()) from exc
    click.echo(f"created {user.role} {user.email} ({user.id})")


@click.command("seed-demo")
@with_appcontext
def seed_demo_command():
    """Add the demo clinics and accounts (idempotent) and print the demo sign-ins."""
    from app.services.demo import seed_demo

    if current_app.config["THUSA_ENV"] == "production":
        raise click.ClickException("seed-demo refuses to run with THUSA_ENV=production (it creates known passwords)")
    for line in seed_demo():
        click.echo(line)


@click.command("worker")
@click.option("--queue", "queues", multiple=True, help="Queue to serve (repeat; default: all, by priority).")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--no-scheduler", is_flag=True, help="Do not run the scheduler (delayed jobs, periodic table).")
@with_appcontext
def worker_command(queues, burst, no_scheduler):
    """Run an RQ worker with its scheduler, inside the app context."""
    from workers import QUEUES
    from workers.runner import run_worker

    unknown = set(queues) - set(QUEUES)
    if unknown:
        raise click.ClickException(f"unknown queue(s) {', '.join(sorted(unknown))}; queues: {', '.join(QUEUES)}")
    run_worker(current_app._get_current_object(), tuple(queues) or QUEUES, burst=burst,
               with_scheduler=not no_scheduler)  # fmt: skip


def init_app(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(worker_command)
