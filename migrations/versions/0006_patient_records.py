"""patient records: what each clinic records about a patient (name, channel, notes) moves off the shared patients row

Revision ID: 0006_patient_records
Revises: 0005_consultations
Create Date: 2027-01-12 09:00:00.000000

Upgrade: one record per (patient, clinic that has an appointment for them), with the patient's name and preferred
channel copied into each (and the patient's timestamps), then ``patients.name`` and ``patients.preferred_channel``
go. A patient with no appointment at all has no clinic to own their name; the application never makes one (a
booking makes the patient and the appointment together), so nothing is lost in practice.

Downgrade: the columns come back on ``patients``, each patient taking the name of their most recently updated
record that has one and the channel of their most recently updated record (``sms`` without any), and the table
goes. A round trip keeps every name and channel; notes exist only in records and go with them.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006_patient_records'
down_revision = '0005_consultations'
branch_labels = None
depends_on = None

CHANNELS = "('sms', 'whatsapp')"

# A new id per row, in the form each backend stores sa.Uuid: native uuid on PostgreSQL, 32 lowercase hex digits
# on SQLite (shaped as a version-4 UUID).
NEW_ID = {
    "postgresql": "gen_random_uuid()",
    "sqlite": "lower(hex(randomblob(6)) || '4' || substr(hex(randomblob(2)), 2) || "
              "substr('89ab', 1 + abs(random()) % 4, 1) || substr(hex(randomblob(2)), 2) || hex(randomblob(6)))",
}

# Newest first, then by id: the same choice on every run.
LATEST = "ORDER BY r.updated_at DESC, r.id LIMIT 1"


def upgrade():
    op.create_table('patient_records',
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('preferred_channel', sa.String(length=16), nullable=False),
    sa.Column('notes', sa.String(length=2000), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(f"preferred_channel IN {CHANNELS}", name=op.f('ck_patient_records_preferred_channel')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name=op.f('fk_patient_records_clinic_id_clinics'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_patient_records_patient_id_patients'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient_records')),
    sa.UniqueConstraint('patient_id', 'clinic_id', name='uq_patient_records_patient_id_clinic_id')
    )
    new_id = NEW_ID[op.get_bind().dialect.name]
    op.execute(
        "INSERT INTO patient_records (id, patient_id, clinic_id, name, preferred_channel, created_at, updated_at) "  # noqa: S608
        f"SELECT {new_id}, p.id, pairs.clinic_id, p.name, p.preferred_channel, p.created_at, p.updated_at "
        "FROM (SELECT DISTINCT patient_id, clinic_id FROM appointments) AS pairs "
        "JOIN patients AS p ON p.id = pairs.patient_id"
    )
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_patients_preferred_channel'), type_='check')
        batch_op.drop_column('preferred_channel')
        batch_op.drop_column('name')


def downgrade():
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('preferred_channel', sa.String(length=16), nullable=False,
                                      server_default='sms'))
        batch_op.create_check_constraint(op.f('ck_patients_preferred_channel'), f"preferred_channel IN {CHANNELS}")
    op.execute(
        "UPDATE patients SET "  # noqa: S608 (constants only)
        "name = (SELECT r.name FROM patient_records AS r "
        f"WHERE r.patient_id = patients.id AND r.name IS NOT NULL {LATEST}), "
        "preferred_channel = COALESCE((SELECT r.preferred_channel FROM patient_records AS r "
        f"WHERE r.patient_id = patients.id {LATEST}), 'sms')"
    )
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.alter_column('preferred_channel', server_default=None)
    op.drop_table('patient_records')
