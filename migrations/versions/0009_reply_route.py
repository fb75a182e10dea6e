"""reply routes and inbound retries: the number a message came in to, the provider a reply is pinned to, and when a
failed inbound message is handled again

Revision ID: 0009_reply_route
Revises: 0008_token_revocation
Create Date: 2026-12-10 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009_reply_route'
down_revision = "0008_token_revocation"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('our_address', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('pinned_provider', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('retry_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('retry_at')
        batch_op.drop_column('pinned_provider')
        batch_op.drop_column('our_address')
