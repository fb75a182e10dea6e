"""triage v2: five levels (clinic_today added), the red-flag screen, rule effects, pharmacists' site type

Levels: self_care < pharmacy < clinic (within 3 days) < clinic_today (see a clinician today) < urgent (hospital
now). Today's rows keep their level: "clinic" meant a routine referral, which it still means, and "urgent" meant
"same day or emergency", so it stays "urgent" (the stricter reading; a recorded red flag is never weakened). On
downgrade, "clinic_today" becomes "urgent", the old level that covered the same day.

Existing pharmacist accounts become site type "pharmacy" (the only kind of site the pharmacist role knew). The
site-type CHECK is PostgreSQL's only (see upgrade()).

Revision ID: 0010_triage_v2
Revises: 0009_reply_route
Create Date: 2027-01-10 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0010_triage_v2'
down_revision = "0009_reply_route"
branch_labels = None
depends_on = None

OLD_LEVELS = ('self_care', 'pharmacy', 'clinic', 'urgent')
NEW_LEVELS = ('self_care', 'pharmacy', 'clinic', 'clinic_today', 'urgent')
SITE_TYPES = ('pharmacy', 'otc_seller')


def _level_check(batch_op, levels) -> None:
    batch_op.create_check_constraint(op.f('ck_recommendations_level'), f"level IN {levels}")


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade():
    # recommendations and triage_guidelines: no table points at them, so SQLite's rebuild of them loses nothing.
    with op.batch_alter_table('recommendations', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_recommendations_level'), type_='check')
        _level_check(batch_op, NEW_LEVELS)

    op.add_column('consultations', sa.Column('red_flags', sa.JSON(), nullable=True))

    with op.batch_alter_table('triage_guidelines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('effects', sa.JSON(), nullable=True))
    op.execute(sa.text("UPDATE triage_guidelines SET effects = '{}'"))
    with op.batch_alter_table('triage_guidelines', schema=None) as batch_op:
        batch_op.alter_column('effects', existing_type=sa.JSON(), nullable=False)

    op.add_column('users', sa.Column('site_type', sa.String(length=16), nullable=True))
    if _postgresql():
        # SQLite would have to rebuild users for a CHECK, and dropping the old users table cascades to its
        # children (chat link codes, reset codes): there the schemas' OneOf is the only check.
        op.create_check_constraint(op.f('ck_users_site_type'), 'users',
                                   f"site_type IS NULL OR site_type IN {SITE_TYPES}")
    op.execute(sa.text("UPDATE users SET site_type = 'pharmacy' WHERE role = 'pharmacist'"))


def downgrade():
    op.execute(sa.text("UPDATE recommendations SET level = 'urgent' WHERE level = 'clinic_today'"))
    op.execute(sa.text("UPDATE triage_guidelines SET level = 'urgent' WHERE level = 'clinic_today'"))

    if _postgresql():
        op.drop_constraint(op.f('ck_users_site_type'), 'users', type_='check')
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+ too): a batch rebuild of users or consultations would
    # cascade-delete their children.
    op.drop_column('users', 'site_type')
    op.drop_column('triage_guidelines', 'effects')
    op.drop_column('consultations', 'red_flags')

    with op.batch_alter_table('recommendations', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_recommendations_level'), type_='check')
        _level_check(batch_op, OLD_LEVELS)
