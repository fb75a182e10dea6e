"""proven phones: users.phone_verified_at/_by, phone_proof_codes; existing phones sorted; squatted chat links undone

A phone on an account is trusted (chat auto-link, password reset SMS, staff USSD menu) only once it is proven: a code
sent to it was entered, or an admin set it.

Existing accounts: a phone set by an admin or the command line counts as proven (the admin vouched for it, as a
newly admin-set phone does from now on); a phone typed at self-registration does not, and its owner proves it with
POST /api/v1/auth/phone/verify and /confirm. Self-registered accounts are the ones with a ``user.register`` audit
row (the audit log is append-only, so the mark is reliable); an account with no audit row at all (the demo seed)
counts as set by the operator. Proven phones get the migration time as ``phone_verified_at`` and no
``phone_verified_by``.

Chat links made without a code (the chat's latest ``auth.chat_link`` audit row says ``whatsapp_number`` or
``telegram_contact``) to an account whose phone is now unproven, or whose phone is a patient's with appointments,
are undone, as the new rule would never have made them: the chat is unlinked, its skin conversation forgotten and
its consultation still collecting answers cancelled, so the number's next message (a patient's reminder answer) is
read afresh. Consultations already made stay with their account (review them with the audit rows above).

Downgrade drops the new columns and table; links undone stay undone (a pharmacist links again with a code).

Revision ID: 0007_proven_phones
Revises: 0006_patient_records
Create Date: 2026-12-08 10:00:00.000000

"""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0007_proven_phones"
down_revision = "0006_patient_records"
branch_labels = None
depends_on = None

LINKED_WITHOUT_CODE = ("whatsapp_number", "telegram_contact")
CHUNK = 500

users = sa.table(
    "users",
    sa.column("id", sa.Uuid()),
    sa.column("phone", sa.String()),
    sa.column("phone_verified_at", sa.DateTime(timezone=True)),
)
audit_log = sa.table(
    "audit_log",
    sa.column("action", sa.String()),
    sa.column("entity_id", sa.String()),
    sa.column("details", sa.JSON()),
    sa.column("at", sa.DateTime(timezone=True)),
)
contacts = sa.table(
    "contacts", sa.column("id", sa.Uuid()), sa.column("user_id", sa.Uuid()), sa.column("updated_at", sa.DateTime())
)
conversations = sa.table(
    "conversations",
    sa.column("contact_id", sa.Uuid()),
    sa.column("flow", sa.String()),
    sa.column("state", sa.JSON()),
    sa.column("updated_at", sa.DateTime()),
)
consultations = sa.table(
    "consultations",
    sa.column("contact_id", sa.Uuid()),
    sa.column("status", sa.String()),
    sa.column("updated_at", sa.DateTime()),
)
patients = sa.table("patients", sa.column("id", sa.Uuid()), sa.column("phone", sa.String()))
appointments = sa.table("appointments", sa.column("id", sa.Uuid()), sa.column("patient_id", sa.Uuid()))


def upgrade():
    op.create_table(
        "phone_proof_codes",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_phone_proof_codes_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_proof_codes")),
    )
    with op.batch_alter_table("phone_proof_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_phone_proof_codes_user_id"), ["user_id"], unique=False)

    # Plain ADD COLUMN on both backends (SQLite too: no table rebuild, which would fire the foreign keys of every
    # table that points to users).
    op.add_column("users", sa.Column("phone_verified_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("phone_verified_by", sa.Uuid(), nullable=True))

    bind = op.get_bind()
    now = datetime.now(UTC)
    if bind.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # stored naive UTC there, as the models' UTCDateTime stores it
    _prove_admin_set_phones(bind, now)
    _undo_links_without_code(bind, now)


def _ids(values) -> set[uuid.UUID]:
    found = set()
    for value in values:
        try:
            found.add(uuid.UUID(str(value)))
        except ValueError:
            continue
    return found


def _prove_admin_set_phones(bind, now) -> None:
    registered = _ids(bind.execute(sa.select(audit_log.c.entity_id).where(audit_log.c.action == "user.register"))
                      .scalars())  # fmt: skip
    with_phone = bind.execute(sa.select(users.c.id).where(users.c.phone.is_not(None))).scalars().all()
    proven = [user_id for user_id in with_phone if user_id not in registered]
    for start in range(0, len(proven), CHUNK):
        bind.execute(users.update().where(users.c.id.in_(proven[start : start + CHUNK])).values(phone_verified_at=now))


def _undo_links_without_code(bind, now) -> None:
    latest: dict[str, tuple[str | None, str | None]] = {}  # contact id → (user id, how) of its latest link
    rows = bind.execute(
        sa.select(audit_log.c.entity_id, audit_log.c.details)
        .where(audit_log.c.action == "auth.chat_link")
        .order_by(audit_log.c.at)
    )
    for entity_id, details in rows:
        details = details or {}
        if details.get("contact_id"):
            latest[details["contact_id"]] = (entity_id, details.get("how"))
    for contact_id, (user_id, how) in latest.items():
        if how not in LINKED_WITHOUT_CODE or not _ids([contact_id]) or not _ids([user_id]):
            continue
        contact_uuid, user_uuid = uuid.UUID(contact_id), uuid.UUID(user_id)
        user = bind.execute(sa.select(users.c.phone, users.c.phone_verified_at).where(users.c.id == user_uuid)).first()
        if user is None:
            continue
        patient_number = (
            user.phone is not None
            and bind.execute(
                sa.select(appointments.c.id)
                .join(patients, appointments.c.patient_id == patients.c.id)
                .where(patients.c.phone == user.phone)
                .limit(1)
            ).first()
            is not None
        )
        if user.phone_verified_at is not None and not patient_number:
            continue
        unlinked = bind.execute(
            contacts.update()
            .where(contacts.c.id == contact_uuid, contacts.c.user_id == user_uuid)
            .values(user_id=None, updated_at=now)
        )
        if unlinked.rowcount:
            bind.execute(
                conversations.update()
                .where(conversations.c.contact_id == contact_uuid, conversations.c.flow == "skin")
                .values(flow=None, state={}, updated_at=now)
            )
            bind.execute(
                consultations.update()
                .where(consultations.c.contact_id == contact_uuid, consultations.c.status == "collecting")
                .values(status="cancelled", updated_at=now)
            )


def downgrade():
    # Plain DROP COLUMN (SQLite 3.35+), for the same reason as the ADD COLUMN above.
    op.drop_column("users", "phone_verified_by")
    op.drop_column("users", "phone_verified_at")
    with op.batch_alter_table("phone_proof_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_phone_proof_codes_user_id"))

    op.drop_table("phone_proof_codes")
