"""Flask commands: ``users create``, ``seed-demo``, ``seed-clinical``, ``worker``, ``telegram set-webhook`` /
``webhook-info``, ``skin-model export-dataset`` (plus Flask-Migrate's ``db`` and flask-smorest's ``openapi``)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from app.errors import ServiceError
from app.extensions import db
from app.jobs import QUEUES
from app.models.user import ROLES, SITE_TYPES
from app.services import consultations, formulary, review_export
from app.services.demo import seed_demo
from app.services.phones import to_e164
from app.services.users import create_user
from bots.channels import telegram
from workers.runner import run_worker

users_cli = AppGroup("users", help="Manage accounts.")


@users_cli.command("create")
@click.option("--email", required=True, help="Sign-in email (unique).")
@click.option("--role", required=True, type=click.Choice(ROLES), help="admin, staff, viewer, pharmacist or clinician.")
@click.option("--clinic", "clinic_id", help="Clinic id (required for staff and viewer).")
@click.option("--phone", help="Phone in E.164, e.g. +26771234567.")
@click.option("--name", default="", help="Display name.")
@click.option("--pharmacy", "pharmacy_name", help="Pharmacy name (required for pharmacist).")
@click.option("--site-type", type=click.Choice(SITE_TYPES), help="Pharmacist: pharmacy (default) or otc_seller.")
@click.option("--language", type=click.Choice(["en", "tn"]), default="en", show_default=True)
@click.option("--all-pharmacies", is_flag=True, help="Clinician: review every pharmacy's consultations.")
def create_user_command(email, role, clinic_id, phone, name, pharmacy_name, site_type, language, all_pharmacies):
    """Create an account. The password comes from THUSA_PASSWORD, or is asked for (hidden)."""
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
            "site_type": site_type,
            "language": language,
            "all_pharmacies": all_pharmacies,
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
    if current_app.config["THUSA_ENV"] == "production":
        raise click.ClickException("seed-demo refuses to run with THUSA_ENV=production (it creates known passwords)")
    for line in seed_demo():
        click.echo(line)


# Skin consultations: the formulary and triage rules the chat's answers are checked against.
@click.command("seed-clinical")
@with_appcontext
def seed_clinical_command():
    """Load app/clinical/formulary.toml and triage_rules.toml into the database (idempotent)."""
    medicines, guidelines = formulary.seed(), consultations.seed_guidelines()
    db.session.commit()
    click.echo(f"formulary: {medicines} medications added or changed; triage guidelines: {guidelines} changed")


@click.command("worker")
@click.option("--queue", "queues", multiple=True, help="Queue to serve (repeat; default: all, by priority).")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--no-scheduler", is_flag=True, help="Do not run the scheduler (delayed jobs, periodic table).")
@with_appcontext
def worker_command(queues, burst, no_scheduler):
    """Run an RQ worker with its scheduler, inside the app context."""
    unknown = set(queues) - set(QUEUES)
    if unknown:
        raise click.ClickException(f"unknown queue(s) {', '.join(sorted(unknown))}; queues: {', '.join(QUEUES)}")
    run_worker(current_app._get_current_object(), tuple(queues) or QUEUES, burst=burst,
               with_scheduler=not no_scheduler)  # fmt: skip


telegram_cli = AppGroup("telegram", help="Telegram Bot API setup.")


@telegram_cli.command("set-webhook")
@click.option("--drop-pending", is_flag=True, help="Drop the updates Telegram has queued but not delivered yet.")
def telegram_set_webhook_command(drop_pending):
    """Register PUBLIC_BASE_URL/webhooks/telegram with Telegram (secret_token = TELEGRAM_WEBHOOK_SECRET).

    PUBLIC_BASE_URL must be https (Telegram calls nothing else); http is accepted only for 127.0.0.1 / localhost,
    for tests and a local Bot API server. The bot token is never printed.
    """
    try:
        url = telegram.set_webhook(current_app.config, drop_pending=drop_pending)
    except telegram.WebhookSetupError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        telegram.shutdown()  # close the Bot API connections and the loop thread before the command returns
    click.echo(f"webhook set: {url} (updates: {', '.join(telegram.ALLOWED_UPDATES)}; "
               f"pending updates {'dropped' if drop_pending else 'kept'})")  # fmt: skip


@telegram_cli.command("webhook-info")
def telegram_webhook_info_command():
    """Print Telegram's getWebhookInfo: the registered URL, pending updates and the last delivery error."""
    try:
        info = telegram.webhook_info(current_app.config)
    except telegram.WebhookSetupError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        telegram.shutdown()
    click.echo(f"url: {info['url'] or '(none: no webhook set)'}")
    click.echo(f"pending_update_count: {info['pending_update_count']}")
    click.echo(f"last_error_message: {info['last_error_message'] or '(none)'}")
    if info["last_error_date"]:
        click.echo(f"last_error_date: {info['last_error_date']}")
    if info["allowed_updates"]:
        click.echo(f"allowed_updates: {', '.join(info['allowed_updates'])}")


skin_model_cli = AppGroup("skin-model", help="The skin model's training data.")


@skin_model_cli.command("export-dataset")
@click.option(
    "--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="A new or empty folder."
)
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), help="Only reviews answered on or after this day.")
def export_dataset_command(out, since):
    """Write consented, clinician-confirmed photos as DIR/<condition>/*.jpg and DIR/meta.csv (pseudonymised)."""
    try:
        done = review_export.export_dataset(out, since.replace(tzinfo=UTC) if since else None)
    except review_export.ExportError as exc:
        raise click.ClickException(str(exc)) from None
    parts = ", ".join(f"{condition} {count}" for condition, count in sorted(done.by_condition.items())) or "none"
    click.echo(f"exported {done.photos} photos of {done.consultations} consultations to {out} ({parts})")


def init_app(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(seed_clinical_command)  # skin consultations
    app.cli.add_command(worker_command)
    app.cli.add_command(telegram_cli)
    app.cli.add_command(skin_model_cli)  # second opinions: the labelled photo export
