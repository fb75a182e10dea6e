"""lean indexes: no B-tree work an upload's rows do not need

An upload of 100,000 appointments spent most of PostgreSQL's time maintaining indexes and checking foreign keys.
``ix_appointments_status`` goes: every query that filters on a status also names a clinic, a time or the next
reminder, which are indexed (seven statuses make a poor index anyway). The indexes of columns an upload leaves
NULL (an appointment's recovery SMS, the visit it rebooks, its series; a contact's account) become partial, on the
rows that have a value: every look-up through them names a value, which implies NOT NULL, so the planner still
uses them.

Revision ID: 0014_lean_indexes
Revises: 0013_missed_visits
Create Date: 2027-01-28 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0014_lean_indexes'
down_revision = "0013_missed_visits"
branch_labels = None
depends_on = None

PARTIAL = (("appointments", "recovery_at"), ("appointments", "rebooked_from_id"), ("appointments", "series_id"),
           ("contacts", "user_id"))


def upgrade():
    op.drop_index("ix_appointments_status", table_name="appointments")
    for table, column in PARTIAL:
        op.drop_index(f"ix_{table}_{column}", table_name=table)
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(f"ix_{table}_{column}", table, [column], postgresql_where=where, sqlite_where=where)


def downgrade():
    for table, column in PARTIAL:
        op.drop_index(f"ix_{table}_{column}", table_name=table)
        op.create_index(f"ix_{table}_{column}", table, [column])
    op.create_index("ix_appointments_status", "appointments", ["status"])
