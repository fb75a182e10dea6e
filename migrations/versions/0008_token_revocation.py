"""token revocation: live sign-ins (token families) in the database; a token whose family is gone is refused

Tokens issued before this revision have no family row and are refused afterwards: everybody signs in once
more after the upgrade (their revocations lived in Redis, which cannot be trusted to still hold them).
Downgrading drops the table; tokens issued meanwhile keep working until they expire on the older code.

Revision ID: 0008_token_revocation
Revises: 0007_proven_phones
Create Date: 2026-12-08 10:00:00.000000

"""

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = "0008_token_revocation"
down_revision = "0007_proven_phones"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "token_families",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_token_families_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_token_families")),
    )
    with op.batch_alter_table("token_families", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_token_families_user_id"), ["user_id"], unique=False)


def downgrade():
    with op.batch_alter_table("token_families", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_token_families_user_id"))
    op.drop_table("token_families")
