"""missed visits: recovery SMS due time, rebooking link, recurring series, tracing outcomes, clinic notices

New nullable columns on appointments (``recovery_at``, ``rebooked_from_id``, ``series_id``, ``series_number``)
without foreign keys: SQLite could add those only by rebuilding appointments, which messages and stock point at.
New tables: ``appointment_series``, ``tracing_outcomes``, ``clinic_notices``. Existing rows are untouched (no
recovery SMS is owed for visits missed before the upgrade). Downgrade drops what upgrade added.

Revision ID: 0013_missed_visits
Revises: 0011_skin_model_validation
Create Date: 2027-01-20 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0013_missed_visits'
down_revision = "0011_skin_model_validation"
branch_labels = None
depends_on = None

OUTCOMES = ('reached_rebooked', 'reached_declined', 'unreachable', 'transferred_out', 'died')
COLUMNS = ('recovery_at', 'rebooked_from_id', 'series_id')


def _stamps():
    return [sa.Column('id', sa.Uuid(), nullable=False),
            sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
            sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False)]


def upgrade():
    op.add_column('appointments', sa.Column('recovery_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('appointments', sa.Column('rebooked_from_id', sa.Uuid(), nullable=True))
    op.add_column('appointments', sa.Column('series_id', sa.Uuid(), nullable=True))
    op.add_column('appointments', sa.Column('series_number', sa.Integer(), nullable=True))
    for column in COLUMNS:
        op.create_index(op.f(f'ix_appointments_{column}'), 'appointments', [column], unique=False)

    op.create_table('appointment_series',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('every_days', sa.Integer(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=True),
    sa.Column('booked', sa.Integer(), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    *_stamps(),
    sa.CheckConstraint('every_days >= 1', name=op.f('ck_appointment_series_every_days')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name=op.f('fk_appointment_series_clinic_id_clinics'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_appointment_series_patient_id_patients'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appointment_series'))
    )
    op.create_index(op.f('ix_appointment_series_clinic_id'), 'appointment_series', ['clinic_id'], unique=False)
    op.create_index(op.f('ix_appointment_series_patient_id'), 'appointment_series', ['patient_id'], unique=False)

    op.create_table('tracing_outcomes',
    sa.Column('appointment_id', sa.Uuid(), nullable=False),
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('outcome', sa.String(length=24), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    *_stamps(),
    sa.CheckConstraint(f'outcome IN {OUTCOMES}', name=op.f('ck_tracing_outcomes_outcome')),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_tracing_outcomes_appointment_id_appointments'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name=op.f('fk_tracing_outcomes_clinic_id_clinics'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_tracing_outcomes_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tracing_outcomes'))
    )
    op.create_index(op.f('ix_tracing_outcomes_appointment_id'), 'tracing_outcomes', ['appointment_id'], unique=False)
    op.create_index(op.f('ix_tracing_outcomes_clinic_id'), 'tracing_outcomes', ['clinic_id'], unique=False)

    op.create_table('clinic_notices',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('audience', sa.JSON(), nullable=False),
    sa.Column('message_en', sa.String(length=320), nullable=False),
    sa.Column('message_tn', sa.String(length=320), nullable=False),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.Column('segments', sa.JSON(), nullable=False),
    sa.Column('segment_total', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    *_stamps(),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name=op.f('fk_clinic_notices_clinic_id_clinics'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_clinic_notices_created_by_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clinic_notices'))
    )
    op.create_index(op.f('ix_clinic_notices_clinic_id'), 'clinic_notices', ['clinic_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_clinic_notices_clinic_id'), table_name='clinic_notices')
    op.drop_table('clinic_notices')
    op.drop_index(op.f('ix_tracing_outcomes_clinic_id'), table_name='tracing_outcomes')
    op.drop_index(op.f('ix_tracing_outcomes_appointment_id'), table_name='tracing_outcomes')
    op.drop_table('tracing_outcomes')
    op.drop_index(op.f('ix_appointment_series_patient_id'), table_name='appointment_series')
    op.drop_index(op.f('ix_appointment_series_clinic_id'), table_name='appointment_series')
    op.drop_table('appointment_series')
    for column in COLUMNS:
        op.drop_index(op.f(f'ix_appointments_{column}'), table_name='appointments')
    for column in ('series_number', *reversed(COLUMNS)):
        if op.get_bind().dialect.name == "sqlite":
            # SQLite's own DROP COLUMN (3.35+): a batch rebuild would drop appointments, which others point at.
            op.execute(f"ALTER TABLE appointments DROP COLUMN {column}")
        else:
            op.drop_column('appointments', column)
