"""Revision 0007_proven_phones on existing data: which phones count as proven, and which chat links are undone.

The data is written at the head revision through the models and services, then the database goes back to the
revision before 0007 (dropping its columns) and up again, so the revision's data step runs on it (SQLite and
PostgreSQL, through the real ``flask db`` commands).
"""

from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import select

from app.config import PROJECT_ROOT
from app.extensions import db
from app.messaging import inbox
from app.models import AuditLog, Consultation, Contact, Conversation, User
from app.models.consultation import STATUS_CANCELLED, STATUS_COLLECTING
from app.services import audit
from tests.factories import book, make_clinic, make_user
from tests.models.test_migrations import _flask_db, empty_database_url, migrations_app, postgres_migrations_url

__all__ = ["empty_database_url", "migrations_app", "postgres_migrations_url"]  # fixtures used here

REVISION = "0007_proven_phones"
PATIENT = "+26771234567"


def _before() -> str:
    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    return ScriptDirectory.from_config(config).get_revision(REVISION).down_revision


def _user(role: str, phone: str | None, *, registered: bool, **kwargs) -> User:
    user = make_user(role, phone=phone, phone_proven=False, **kwargs)
    audit.record(None, "user.register" if registered else "user.create", "user", user.id, {"role": role})
    db.session.commit()
    return user


def _chat(user: User, address: str, how: str) -> Contact:
    """A chat linked to ``user`` (as the skin flow links it), with a consultation collecting answers."""
    contact = inbox.contact_for(address)  # the patient's own contact when the number is a patient's
    contact.user_id = user.id
    db.session.flush()
    db.session.add(Conversation(contact_id=contact.id, channel="whatsapp", flow="skin", state={"asking": "condition"}))
    db.session.add(Consultation(user_id=user.id, contact_id=contact.id, channel="whatsapp", status=STATUS_COLLECTING))
    audit.record(None, "auth.chat_link", "user", user.id, {"contact_id": str(contact.id), "how": how})
    db.session.commit()
    return contact


def test_admin_set_phones_stay_proven_self_registered_ones_do_not_and_squatted_links_are_undone(migrations_app):
    _flask_db(migrations_app, "upgrade")
    with migrations_app.app_context():
        clinic = make_clinic()
        book(clinic, PATIENT)
        people = {
            "staff": _user("staff", "+26771000001", registered=False, clinic=clinic),
            "admin_made_pharmacist": _user("pharmacist", "+233241000002", registered=False),
            "seeded": make_user("pharmacist", phone="+233241000003", phone_proven=False),  # no audit row at all
            "squatter": _user("pharmacist", PATIENT, registered=True),
            "registered": _user("pharmacist", "+233241000004", registered=True),
            "no_phone": _user("viewer", None, registered=False, clinic=clinic),
        }
        chats = {
            "squatted": _chat(people["squatter"], PATIENT, "whatsapp_number"),
            "own_number": _chat(people["admin_made_pharmacist"], "+233241000002", "whatsapp_number"),
            "by_code": _chat(people["registered"], "770011", "code"),
            "card": _chat(people["registered"], "770012", "telegram_contact"),
        }
        ids = {name: row.id for name, row in {**people, **chats}.items()}
        audit_rows = db.session.query(AuditLog).count()
        db.session.remove()
        db.engine.dispose()

    _flask_db(migrations_app, "downgrade", _before())
    _flask_db(migrations_app, "upgrade")

    with migrations_app.app_context():
        proven = {name: db.session.get(User, ids[name]).phone_verified_at is not None for name in people}
        assert proven == {"staff": True, "admin_made_pharmacist": True, "seeded": True, "squatter": False,
                          "registered": False, "no_phone": False}  # fmt: skip
        assert all(db.session.get(User, ids[name]).phone_verified_by is None for name in people)

        linked = {name: db.session.get(Contact, ids[name]).user_id for name in chats}
        assert linked == {"squatted": None, "own_number": ids["admin_made_pharmacist"], "by_code": ids["registered"],
                          "card": None}  # fmt: skip
        for name in chats:
            conversation = db.session.scalar(select(Conversation).where(Conversation.contact_id == ids[name]))
            consultation = db.session.scalar(select(Consultation).where(Consultation.contact_id == ids[name]))
            undone = name in ("squatted", "card")
            assert (conversation.flow is None) is undone, name
            assert consultation.status == (STATUS_CANCELLED if undone else STATUS_COLLECTING), name
        assert db.session.query(AuditLog).count() == audit_rows  # the audit log is never rewritten
        db.session.remove()
        db.engine.dispose()


def test_a_proven_phone_that_is_a_patients_number_loses_its_link_without_a_code(migrations_app):
    _flask_db(migrations_app, "upgrade")
    with migrations_app.app_context():
        book(make_clinic(), PATIENT)
        pharmacist = _user("pharmacist", PATIENT, registered=False)  # admin-made: proven, but a patient's number
        pharmacist_id, contact_id = pharmacist.id, _chat(pharmacist, PATIENT, "whatsapp_number").id
        db.session.remove()
        db.engine.dispose()

    _flask_db(migrations_app, "downgrade", _before())
    _flask_db(migrations_app, "upgrade")

    with migrations_app.app_context():
        assert db.session.get(User, pharmacist_id).phone_verified_at is not None
        assert db.session.get(Contact, contact_id).user_id is None
        db.session.remove()
        db.engine.dispose()
