"""``flask seed-clinical`` and the skin part of ``seed-demo``: the formulary and guidelines, idempotently; the demo
pharmacist's WhatsApp number links by itself."""

from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.models import Medication, TriageGuideline, User
from app.services import formulary, triage


def _counts() -> tuple[int, int]:
    return (db.session.scalar(select(func.count()).select_from(Medication)),
            db.session.scalar(select(func.count()).select_from(TriageGuideline)))  # fmt: skip


def test_seed_clinical_loads_the_files_once(runner):
    first = runner.invoke(args=["seed-clinical"])
    assert first.exit_code == 0, first.output
    expected = (len(formulary.medicines()), len(triage.rules().rules) + len(triage.rules().conditions))
    assert _counts() == expected
    again = runner.invoke(args=["seed-clinical"])
    assert "0 medications added or changed" in again.output and "0 changed" in again.output
    assert _counts() == expected


def test_seed_demo_seeds_the_formulary_and_the_pharmacist(runner):
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    assert _counts()[0] == len(formulary.medicines())
    pharmacist = db.session.scalar(select(User).where(User.email == "pharmacist@thusa.example"))
    assert pharmacist.phone == "+233241000002" and pharmacist.role == "pharmacist"
    from app.messaging import inbox
    from app.services import consultations

    contact = inbox.contact_for("+233241000002")
    assert consultations.link_by_phone(contact).id == pharmacist.id
