"""stock: stock items and their movement ledger, staff USSD PINs, clinic alert recipients

Revision ID: 0004_stock
Revises: 0003_appointments
Create Date: 2026-12-01 19:05:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0004_stock'
down_revision = '0003_appointments'
branch_labels = None
depends_on = None

KINDS = ('received', 'dispensed', 'counted', 'adjusted', 'expired')
CHANNELS = ('api', 'ussd')


def upgrade():
    op.create_table('stock_items',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('code', sa.String(length=50), nullable=True),
    sa.Column('unit', sa.String(length=30), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('reorder_level', sa.Integer(), nullable=False),
    sa.Column('low_alert_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('level >= 0', name=op.f('ck_stock_items_level_not_negative')),
    sa.CheckConstraint('reorder_level >= 0', name=op.f('ck_stock_items_reorder_level_not_negative')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name=op.f('fk_stock_items_clinic_id_clinics'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stock_items')),
    sa.UniqueConstraint('clinic_id', 'name', name='uq_stock_items_clinic_id_name')
    )
    with op.batch_alter_table('stock_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stock_items_clinic_id'), ['clinic_id'], unique=False)
        batch_op.create_index('uq_stock_items_clinic_id_code', ['clinic_id', 'code'], unique=True)

    op.create_table('stock_movements',
    sa.Column('item_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('delta', sa.Integer(), nullable=False),
    sa.Column('level_after', sa.Integer(), nullable=False),
    sa.Column('batch', sa.String(length=50), nullable=True),
    sa.Column('expiry_date', sa.Date(), nullable=True),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint(f'kind IN {KINDS}', name=op.f('ck_stock_movements_kind')),
    sa.CheckConstraint(f'channel IN {CHANNELS}', name=op.f('ck_stock_movements_channel')),
    sa.CheckConstraint('level_after >= 0', name=op.f('ck_stock_movements_level_after_not_negative')),
    sa.ForeignKeyConstraint(['item_id'], ['stock_items.id'], name=op.f('fk_stock_movements_item_id_stock_items'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_stock_movements_user_id_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stock_movements'))
    )
    with op.batch_alter_table('stock_movements', schema=None) as batch_op:
        batch_op.create_index('ix_stock_movements_item_id_at', ['item_id', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_stock_movements_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pin_hash', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('pin_failed_attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('pin_locked_until', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('clinics', schema=None) as batch_op:
        batch_op.add_column(sa.Column('alert_recipient_ids', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('clinics', schema=None) as batch_op:
        batch_op.drop_column('alert_recipient_ids')

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('pin_locked_until')
        batch_op.drop_column('pin_failed_attempts')
        batch_op.drop_column('pin_hash')

    with op.batch_alter_table('stock_movements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stock_movements_user_id'))
        batch_op.drop_index('ix_stock_movements_item_id_at')
    op.drop_table('stock_movements')

    with op.batch_alter_table('stock_items', schema=None) as batch_op:
        batch_op.drop_index('uq_stock_items_clinic_id_code')
        batch_op.drop_index(batch_op.f('ix_stock_items_clinic_id'))
    op.drop_table('stock_items')
