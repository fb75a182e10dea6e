"""appointments: patients, appointments, clinic reminder settings

Revision ID: 0003_appointments
Revises: 0002_messaging_core
Create Date: 2026-11-22 07:31:18.378569

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0003_appointments'
down_revision = '0002_messaging_core'
branch_labels = None
depends_on = None

OLD_KINDS = ('reply', 'reminder', 'api', 'system')
KINDS = ('reply', 'reminder', 'api', 'system', 'notice')

# Existing clinics get the defaults the model gives new ones (app/models/clinic.py).
OPENING_HOURS = "'" + '{' + ', '.join(f'"{d}": [["07:30", "16:30"]]' for d in ('mon', 'tue', 'wed', 'thu', 'fri')) + '}' + "'"


def upgrade():
    op.create_table('patients',
    sa.Column('phone', sa.String(length=64), nullable=False),
    sa.Column('contact_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('preferred_channel', sa.String(length=16), nullable=False),
    sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("preferred_channel IN ('sms', 'whatsapp')", name=op.f('ck_patients_preferred_channel')),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_patients_contact_id_contacts'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patients')),
    sa.UniqueConstraint('contact_id', name=op.f('uq_patients_contact_id')),
    sa.UniqueConstraint('phone', name=op.f('uq_patients_phone'))
    )
    op.create_table('appointments',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('appointment_datetime', sa.DateTime(timezone=True), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=True),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('cancelled_by', sa.String(length=16), nullable=True),
    sa.Column('reminders_sent', sa.Integer(), nullable=False),
    sa.Column('attended', sa.Boolean(), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('external_ref', sa.String(length=100), nullable=True),
    sa.Column('import_key', sa.String(length=200), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('next_reminder_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_reminder_offset', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("cancelled_by IS NULL OR cancelled_by IN ('patient', 'clinic')", name=op.f('ck_appointments_cancelled_by')),
    sa.CheckConstraint("language IS NULL OR language IN ('en', 'tn')", name=op.f('ck_appointments_language')),
    sa.CheckConstraint("status IN ('scheduled', 'confirmed', 'reschedule_requested', 'rescheduled', 'cancelled', 'attended', 'missed')", name=op.f('ck_appointments_status')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name=op.f('fk_appointments_clinic_id_clinics'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_appointments_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_appointments_patient_id_patients'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appointments')),
    sa.UniqueConstraint('clinic_id', 'import_key', name='uq_appointments_clinic_id_import_key')
    )
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appointments_appointment_datetime'), ['appointment_datetime'], unique=False)
        batch_op.create_index('ix_appointments_clinic_id_appointment_datetime', ['clinic_id', 'appointment_datetime'], unique=False)
        batch_op.create_index(batch_op.f('ix_appointments_next_reminder_at'), ['next_reminder_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_appointments_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_appointments_status'), ['status'], unique=False)

    with op.batch_alter_table('clinics', schema=None) as batch_op:
        batch_op.add_column(sa.Column('short_name', sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column('reminder_offsets_minutes', sa.JSON(), nullable=False, server_default=sa.text("'[4320, 1440]'")))
        batch_op.add_column(sa.Column('send_window_start', sa.Time(), nullable=False, server_default='07:00:00'))
        batch_op.add_column(sa.Column('send_window_end', sa.Time(), nullable=False, server_default='20:00:00'))
        batch_op.add_column(sa.Column('booking_confirmation', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('opening_hours', sa.JSON(), nullable=False, server_default=sa.text(OPENING_HOURS)))
        batch_op.add_column(sa.Column('slot_minutes', sa.Integer(), nullable=False, server_default='30'))
        batch_op.add_column(sa.Column('slot_capacity', sa.Integer(), nullable=False, server_default='4'))

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('appointment_id', sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f('ix_messages_appointment_id'), ['appointment_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_messages_appointment_id_appointments'), 'appointments', ['appointment_id'], ['id'], ondelete='SET NULL')
        batch_op.drop_constraint(op.f('ck_messages_kind'), type_='check')
        batch_op.create_check_constraint(op.f('ck_messages_kind'), f"kind IS NULL OR kind IN {KINDS}")



def downgrade():
    op.execute("UPDATE messages SET kind = 'system' WHERE kind = 'notice'")
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_messages_kind'), type_='check')
        batch_op.create_check_constraint(op.f('ck_messages_kind'), f"kind IS NULL OR kind IN {OLD_KINDS}")
        batch_op.drop_constraint(batch_op.f('fk_messages_appointment_id_appointments'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_messages_appointment_id'))
        batch_op.drop_column('appointment_id')

    with op.batch_alter_table('clinics', schema=None) as batch_op:
        batch_op.drop_column('slot_capacity')
        batch_op.drop_column('slot_minutes')
        batch_op.drop_column('opening_hours')
        batch_op.drop_column('booking_confirmation')
        batch_op.drop_column('send_window_end')
        batch_op.drop_column('send_window_start')
        batch_op.drop_column('reminder_offsets_minutes')
        batch_op.drop_column('short_name')

    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_appointments_status'))
        batch_op.drop_index(batch_op.f('ix_appointments_patient_id'))
        batch_op.drop_index(batch_op.f('ix_appointments_next_reminder_at'))
        batch_op.drop_index('ix_appointments_clinic_id_appointment_datetime')
        batch_op.drop_index(batch_op.f('ix_appointments_appointment_datetime'))

    op.drop_table('appointments')
    op.drop_table('patients')
