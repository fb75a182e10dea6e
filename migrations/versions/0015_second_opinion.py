"""second opinion: the clinician role and the pharmacies it covers, review requests, photo consent, follow-up

The users role CHECK gains ``clinician``. PostgreSQL swaps the constraint; SQLite rebuilds the users table (batch
mode), which is safe because migrations run there with foreign keys off (migrations/env.py): the rows of the
tables that point to users stay. ``users.all_pharmacies`` (a clinician who covers every pharmacy) defaults to
false; ``clinician_pharmacies`` lists the pharmacist accounts a clinician covers otherwise.

``review_requests``: one row per request for a clinician's second opinion, with the answer beside the rules'
level. Consultations gain ``photo_consent`` (default false: no photo of an existing consultation is ever exported),
the follow-up check-in's due and sent times, its outcome, and ``reopened_at``. The outcome CHECK is PostgreSQL's
only (SQLite would rebuild consultations for it; the service checks the value).

Downgrade drops all of it, and refuses while a clinician account exists (the old role CHECK has no clinician; no
account silently changes role).

Revision ID: 0015_second_opinion
Revises: 0014_lean_indexes
Create Date: 2027-01-20 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0015_second_opinion"
down_revision = "0014_lean_indexes"
branch_labels = None
depends_on = None

OLD_ROLES = ("admin", "staff", "viewer", "pharmacist")
NEW_ROLES = ("admin", "staff", "viewer", "pharmacist", "clinician")
LEVELS = ("self_care", "pharmacy", "clinic", "clinic_today", "urgent")
OUTCOMES = ("better", "same", "worse", "clinic")


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _role_check(roles) -> None:
    if _postgresql():
        op.drop_constraint(op.f("ck_users_role"), "users", type_="check")
        op.create_check_constraint(op.f("ck_users_role"), "users", f"role IN {roles}")
    else:
        with op.batch_alter_table("users", schema=None) as batch_op:
            batch_op.drop_constraint(op.f("ck_users_role"), type_="check")
            batch_op.create_check_constraint(op.f("ck_users_role"), f"role IN {roles}")


def upgrade():
    _role_check(NEW_ROLES)
    op.add_column("users", sa.Column("all_pharmacies", sa.Boolean(), server_default=sa.false(), nullable=False))

    op.create_table(
        "clinician_pharmacies",
        sa.Column("clinician_id", sa.Uuid(), nullable=False),
        sa.Column("pharmacist_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["clinician_id"], ["users.id"], name=op.f("fk_clinician_pharmacies_clinician_id_users"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["pharmacist_id"], ["users.id"],
                                name=op.f("fk_clinician_pharmacies_pharmacist_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinician_pharmacies")),
        sa.UniqueConstraint("clinician_id", "pharmacist_id",
                            name=op.f("uq_clinician_pharmacies_clinician_id")),
    )  # fmt: skip
    with op.batch_alter_table("clinician_pharmacies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_clinician_pharmacies_clinician_id"), ["clinician_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_clinician_pharmacies_pharmacist_id"), ["pharmacist_id"], unique=False)

    op.create_table(
        "review_requests",
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.Uuid(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("rules_level", sa.String(length=16), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("overdue_alerted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_by", sa.Uuid(), nullable=True),
        sa.Column("diagnosis", sa.String(length=200), nullable=True),
        sa.Column("condition", sa.String(length=32), nullable=True),
        sa.Column("icd10", sa.String(length=8), nullable=True),
        sa.Column("level", sa.String(length=16), nullable=True),
        sa.Column("advice", sa.Text(), nullable=True),
        sa.Column("confidence", sa.String(length=16), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('open', 'answered')", name=op.f("ck_review_requests_status")),
        sa.CheckConstraint("reason IN ('requested', 'level', 'worse')", name=op.f("ck_review_requests_reason")),
        sa.CheckConstraint(f"rules_level IN {LEVELS}", name=op.f("ck_review_requests_rules_level")),
        sa.CheckConstraint(f"level IS NULL OR level IN {LEVELS}", name=op.f("ck_review_requests_level")),
        sa.CheckConstraint("confidence IS NULL OR confidence IN ('confirmed', 'likely', 'unsure')",
                           name=op.f("ck_review_requests_confidence")),
        sa.ForeignKeyConstraint(["consultation_id"], ["consultations.id"],
                                name=op.f("fk_review_requests_consultation_id_consultations"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["requested_by"], ["users.id"], name=op.f("fk_review_requests_requested_by_users"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["answered_by"], ["users.id"], name=op.f("fk_review_requests_answered_by_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_requests")),
    )  # fmt: skip
    with op.batch_alter_table("review_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_requests_consultation_id"), ["consultation_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_review_requests_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_review_requests_due_at"), ["due_at"], unique=False)

    # Plain ADD COLUMN on both backends: no rebuild of consultations.
    op.add_column("consultations", sa.Column("photo_consent", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("consultations", sa.Column("photo_consent_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("consultations", sa.Column("follow_up_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("consultations", sa.Column("follow_up_sent_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("consultations", sa.Column("outcome", sa.String(length=16), nullable=True))
    op.add_column("consultations", sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("consultations", sa.Column("reopened_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_consultations_follow_up_at"), "consultations", ["follow_up_at"], unique=False)
    if _postgresql():
        op.create_check_constraint(op.f("ck_consultations_outcome"), "consultations",
                                   f"outcome IS NULL OR outcome IN {OUTCOMES}")  # fmt: skip


def downgrade():
    clinicians = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM users WHERE role = 'clinician'")).scalar()
    if clinicians:
        raise RuntimeError(f"{clinicians} clinician account(s) exist: change their role before downgrading "
                           "(the old role CHECK has no clinician)")  # fmt: skip
    if _postgresql():
        op.drop_constraint(op.f("ck_consultations_outcome"), "consultations", type_="check")
    op.drop_index(op.f("ix_consultations_follow_up_at"), table_name="consultations")
    for column in ("reopened_at", "outcome_at", "outcome", "follow_up_sent_at", "follow_up_at", "photo_consent_at",
                   "photo_consent"):  # fmt: skip
        op.drop_column("consultations", column)

    with op.batch_alter_table("review_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_requests_due_at"))
        batch_op.drop_index(batch_op.f("ix_review_requests_status"))
        batch_op.drop_index(batch_op.f("ix_review_requests_consultation_id"))
    op.drop_table("review_requests")
    with op.batch_alter_table("clinician_pharmacies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clinician_pharmacies_pharmacist_id"))
        batch_op.drop_index(batch_op.f("ix_clinician_pharmacies_clinician_id"))
    op.drop_table("clinician_pharmacies")

    op.drop_column("users", "all_pharmacies")
    _role_check(OLD_ROLES)
