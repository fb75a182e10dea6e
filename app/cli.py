"""Flask commands: ``users create``, ``seed-demo``, ``seed-clinical``, ``worker``, ``jobs list`` / ``run``,
``telegram set-webhook`` / ``webhook-info``, ``skin-model train`` / ``evaluate`` / ``validate`` / ``export-dataset``
(plus Flask-Migrate's ``db`` and flask-smorest's ``openapi``)."""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from app.errors import ServiceError
from app.extensions import db, redis_client
from app.jobs import QUEUES
from app.models.user import ROLES, SITE_TYPES
from app.services import consultations, formulary, review_export, skin_model_validation
from app.services.demo import seed_demo
from app.services.phones import to_e164
from app.services.users import create_user
from bots.channels import telegram
from workers import schedule
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


jobs_cli = AppGroup("jobs", help="The periodic jobs: list them, or run one now.")


@jobs_cli.command("list")
def jobs_list_command():
    """Every periodic job: name, period, queue, function."""
    for job in schedule.SCHEDULE:
        click.echo(f"{job.name:<24} every {job.every_seconds:>6} s  {job.queue:<10} {job.func}")


@jobs_cli.command("run")
@click.argument("name")
@with_appcontext
def jobs_run_command(name):
    """Run the periodic job NAME now, in this process (claimed like the scheduled run: never two at once)."""
    try:
        result = schedule.run_now(redis_client.client, name)
    except KeyError:
        names = ", ".join(job.name for job in schedule.SCHEDULE)
        raise click.ClickException(f"no periodic job {name!r}; jobs: {names}") from None
    except schedule.RunRefused as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{name}: {result}")


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


skin_model_cli = AppGroup(
    "skin-model", help="Train, evaluate and sign off a skin photo model; export its labelled data (docs/skin-model.md)."
)


def _caps() -> dict:
    from app.services import images  # numpy, Pillow, pillow-heif: the web process registers, never runs, these

    config = current_app.config
    return {**images.upload_caps(config), "max_decode_bytes": config["IMAGE_DECODE_MAX_BYTES"]}


def _progress(message: str) -> None:
    click.echo(message, err=True)


@skin_model_cli.command("train")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of condition folders (triage condition ids, or not_skin), with an optional meta.csv.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="New folder for the trained model (model.onnx, manifest.json, report.md, split.csv).",
)
@click.option(
    "--backbone",
    "backbone_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Feature extractor to train on (default: the shipped EfficientNet-Lite0 backbone).",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the patient split.")
@click.option("--name", default="thusa-skin-head", show_default=True, help="Model name in the manifest.")
@click.option("--version", default="", help="Model version (default: the UTC time of training).")
def skin_model_train_command(data_dir, out_dir, backbone_dir, seed, name, version):
    """Train a head on confirmed photos: every photo goes the production way, split by patient, metrics in
    report.md."""
    from app.services import skin_training  # numpy and Pillow, like images in _caps()
    from app.services.skin_model import DEFAULT_MODEL_DIR

    try:
        manifest = skin_training.train(data_dir, out_dir, backbone_dir or DEFAULT_MODEL_DIR, seed=seed, name=name,
                                       version=version, caps=_caps(), progress=_progress)  # fmt: skip
    except skin_training.TrainingError as exc:
        raise click.ClickException(str(exc)) from None
    heldout = manifest["evaluation"]["heldout"]
    click.echo(f"trained {manifest['name']} {manifest['version']} ({manifest['evaluation']['split']} split): "
               f"balanced accuracy {heldout['balanced_accuracy']}, macro-F1 {heldout['macro_f1']}, top-3 "
               f"{heldout['top3_accuracy']}; sha256 {manifest['sha256']}")  # fmt: skip
    click.echo(f"read {out_dir / skin_training.REPORT_FILE}; sign-off: flask skin-model validate {out_dir} "
               f"--signed-off-by NAME")  # fmt: skip


@skin_model_cli.command("evaluate")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Another labelled folder (the model's labels as folder names).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON instead of Markdown.")
def skin_model_evaluate_command(model_dir, data_dir, as_json):
    """Re-score a trained model on another labelled set."""
    from app.services import skin_training  # numpy and Pillow, like images in _caps()

    started = time.perf_counter()
    try:
        result = skin_training.evaluate(model_dir, data_dir, caps=_caps(), progress=_progress)
    except skin_training.TrainingError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    model = result["model"]
    click.echo(f"# {model['name']} {model['version']} on {data_dir}\n")
    click.echo(f"- model sha256 `{model['sha256']}`; file list sha256 `{result['data_sha256']}`")
    labels = list(result["metrics"]["per_class"])
    click.echo("\n".join(skin_training.metrics_markdown(result["metrics"], labels)))
    click.echo(f"\n({time.perf_counter() - started:.1f} s)", err=True)


@skin_model_cli.command("validate")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--signed-off-by", "signed_off_by", default="", help="The clinician who signs the model off.")
def skin_model_validate_command(model_dir, signed_off_by):
    """Check a trained model's held-out metrics against app/clinical/model_thresholds.toml and record the
    sign-off (who, when, the model file's checksum). Only then may replies show its labels."""
    try:
        record = skin_model_validation.validate(model_dir, signed_off_by)
    except skin_model_validation.GateRefused as exc:
        db.session.rollback()
        raise click.ClickException("not validated:\n  - " + "\n  - ".join(exc.problems)) from None
    db.session.commit()
    click.echo(f"validated {record.model_name} {record.model_version} (sha256 {record.model_sha256}), signed off by "
               f"{record.signed_off_by} at {record.signed_off_at:%Y-%m-%d %H:%M} UTC")  # fmt: skip
    if not record.summary.get("thresholds_confirmed_by_clinical_lead"):
        click.echo("note: app/clinical/model_thresholds.toml is not yet confirmed by the clinical lead", err=True)
    if record.summary.get("absent_referral"):
        click.echo(f"note: no label for referral condition(s) {', '.join(record.summary['absent_referral'])}: the "
                   f"model never raises the level for them", err=True)  # fmt: skip
    click.echo(f"serve it: SKIN_MODEL_DIR={model_dir}")


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
    app.cli.add_command(skin_model_cli)
    app.cli.add_command(jobs_cli)  # periodic jobs by hand
