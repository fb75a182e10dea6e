"""messaging core: contacts, conversations, message events, message fields

Revision ID: 0002_messaging_core
Revises: 0001_foundation
Create Date: 2026-11-22 05:52:29.806967

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0002_messaging_core'
down_revision = '0001_foundation'
branch_labels = None
depends_on = None

OLD_STATUSES = ('received', 'handled', 'queued', 'sending', 'sent', 'delivered', 'failed')
NEW_STATUSES = ('received', 'handled', 'scheduled', 'queued', 'sending', 'sent', 'delivered', 'read', 'failed', 'unknown')
KINDS = ('reply', 'reminder', 'api', 'system')


def upgrade():
    op.create_table('contacts',
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('language', sa.String(length=2), nullable=True),
    sa.Column('opted_out_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_whatsapp_inbound_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("language IS NULL OR language IN ('en', 'tn')", name=op.f('ck_contacts_language')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_contacts_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts')),
    sa.UniqueConstraint('address', name=op.f('uq_contacts_address'))
    )
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contacts_user_id'), ['user_id'], unique=False)

    op.create_table('conversations',
    sa.Column('contact_id', sa.Uuid(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('flow', sa.String(length=64), nullable=True),
    sa.Column('state', sa.JSON(), nullable=False),
    sa.Column('session_id', sa.String(length=128), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_conversations_contact_id_contacts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conversations')),
    sa.UniqueConstraint('contact_id', 'channel', name=op.f('uq_conversations_contact_id'))
    )
    op.create_table('message_events',
    sa.Column('message_id', sa.Uuid(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=True),
    sa.Column('provider_id', sa.String(length=128), nullable=True),
    sa.Column('raw_status', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=True),
    sa.Column('error_code', sa.String(length=32), nullable=True),
    sa.Column('detail', sa.String(length=500), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_message_events_message_id_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_events'))
    )
    with op.batch_alter_table('message_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_events_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_message_events_provider_id'), ['provider_id'], unique=False)

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contact_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('clinic_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('kind', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('media', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        batch_op.add_column(sa.Column('buttons', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        batch_op.add_column(sa.Column('encoding', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('segments', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('send_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('received_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('error_code', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('reply_to_id', sa.Uuid(), nullable=True))
        batch_op.drop_index(batch_op.f('ix_messages_provider_id'))
        batch_op.create_index(batch_op.f('ix_messages_clinic_id'), ['clinic_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index('ix_messages_provider_provider_id', ['provider', 'provider_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_send_at'), ['send_at'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_messages_reply_to_id'), ['reply_to_id'])
        batch_op.create_foreign_key(batch_op.f('fk_messages_clinic_id_clinics'), 'clinics', ['clinic_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_messages_contact_id_contacts'), 'contacts', ['contact_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_messages_reply_to_id_messages'), 'messages', ['reply_to_id'], ['id'], ondelete='SET NULL')
        batch_op.drop_constraint(op.f('ck_messages_status'), type_='check')
        batch_op.create_check_constraint(op.f('ck_messages_status'), f"status IN {NEW_STATUSES}")
        batch_op.create_check_constraint(op.f('ck_messages_kind'), f"kind IS NULL OR kind IN {KINDS}")


def downgrade():
    op.execute("UPDATE messages SET status = 'failed' WHERE status IN ('scheduled', 'read', 'unknown')")
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_messages_kind'), type_='check')
        batch_op.drop_constraint(op.f('ck_messages_status'), type_='check')
        batch_op.create_check_constraint(op.f('ck_messages_status'), f"status IN {OLD_STATUSES}")
        batch_op.drop_constraint(batch_op.f('fk_messages_reply_to_id_messages'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_messages_contact_id_contacts'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_messages_clinic_id_clinics'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_messages_reply_to_id'), type_='unique')
        batch_op.drop_index(batch_op.f('ix_messages_send_at'))
        batch_op.drop_index('ix_messages_provider_provider_id')
        batch_op.drop_index(batch_op.f('ix_messages_contact_id'))
        batch_op.drop_index(batch_op.f('ix_messages_clinic_id'))
        batch_op.create_index(batch_op.f('ix_messages_provider_id'), ['provider_id'], unique=False)
        batch_op.drop_column('reply_to_id')
        batch_op.drop_column('error_code')
        batch_op.drop_column('claimed_at')
        batch_op.drop_column('received_at')
        batch_op.drop_column('send_at')
        batch_op.drop_column('segments')
        batch_op.drop_column('encoding')
        batch_op.drop_column('buttons')
        batch_op.drop_column('media')
        batch_op.drop_column('kind')
        batch_op.drop_column('clinic_id')
        batch_op.drop_column('contact_id')

    with op.batch_alter_table('message_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_events_provider_id'))
        batch_op.drop_index(batch_op.f('ix_message_events_message_id'))

    op.drop_table('message_events')
    op.drop_table('conversations')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contacts_user_id'))

    op.drop_table('contacts')

