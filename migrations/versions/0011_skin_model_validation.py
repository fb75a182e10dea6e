"""skin model: the clinical sign-off of a model file, and the model's checksum and output summary per analysis

``skin_model_validations`` holds one row per signed-off model file (``flask skin-model validate``), keyed by the
file's sha256: only a model with a row there may have a label shown. ``analyses`` gains ``model_sha256`` and
``output`` (a feature extractor's summary); older rows keep NULL in both.

Revision ID: 0011_skin_model_validation
Revises: 0010_triage_v2
Create Date: 2027-01-20 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0011_skin_model_validation'
down_revision = "0010_triage_v2"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('skin_model_validations',
    sa.Column('model_sha256', sa.String(length=64), nullable=False),
    sa.Column('model_name', sa.String(length=100), nullable=False),
    sa.Column('model_version', sa.String(length=50), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('signed_off_by', sa.String(length=200), nullable=False),
    sa.Column('signed_off_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('thresholds_sha256', sa.String(length=64), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_skin_model_validations')),
    sa.UniqueConstraint('model_sha256', name=op.f('uq_skin_model_validations_model_sha256'))
    )
    # Plain ADD/DROP COLUMN (SQLite 3.35+ too): a batch rebuild of analyses is not needed for nullable columns.
    op.add_column('analyses', sa.Column('model_sha256', sa.String(length=64), nullable=True))
    op.add_column('analyses', sa.Column('output', sa.JSON(), nullable=True))


def downgrade():
    op.drop_column('analyses', 'output')
    op.drop_column('analyses', 'model_sha256')
    op.drop_table('skin_model_validations')
