"""batched foreign keys: the upload's six foreign keys checked once per statement on PostgreSQL

PostgreSQL checks a foreign key with one trigger call per written row: a 100,000-row appointment upload made
600,000 such checks (~4.4 µs each, ~2.1 s of its ~4 s of PostgreSQL time). On PostgreSQL these six constraints
become triggers with the same names, ``ON DELETE`` and errors, that check a whole statement's rows at once (one
anti-join per relation: a 10,000-row appointment INSERT's three checks took 12-23 ms instead of the per-row
triggers' ~175 ms). SQLite keeps its real constraints: this revision does nothing there.

=========================================  ===============================  ==========  =========
constraint                                 child.column                     parent      on delete
=========================================  ===============================  ==========  =========
fk_patients_contact_id_contacts            patients.contact_id              contacts    RESTRICT
fk_patient_records_patient_id_patients     patient_records.patient_id       patients    RESTRICT
fk_patient_records_clinic_id_clinics       patient_records.clinic_id        clinics     RESTRICT
fk_appointments_patient_id_patients        appointments.patient_id          patients    RESTRICT
fk_appointments_clinic_id_clinics          appointments.clinic_id           clinics     RESTRICT
fk_appointments_created_by_users           appointments.created_by          users       SET NULL
=========================================  ===============================  ==========  =========

Four generic functions, given the constraint by the trigger's arguments; each relation gets one trigger of each:

- child INSERT (``<name>_insert``, per statement, over the inserted rows; COPY fires it too): under READ COMMITTED
  one query finds a non-NULL value with no parent row, taking no row lock. Under REPEATABLE READ or SERIALIZABLE
  the referenced parent rows are first locked ``FOR KEY SHARE`` (a delete committed after the transaction's
  snapshot then raises a serialization failure, as PostgreSQL's own check does).
- child UPDATE of the column (``<name>_update``, per row, only when the value changes): PostgreSQL's own check,
  ``SELECT ... FOR KEY SHARE`` of the new parent.
- parent DELETE (``<name>_delete``, per statement, over the deleted rows): ``LOCK TABLE <child> IN SHARE MODE``,
  which waits for every transaction that wrote children and holds new writers off until this one ends; then,
  with a fresh READ COMMITTED snapshot that sees every committed child, RESTRICT raises if a child names a deleted
  row and SET NULL clears the column. This lock is what makes the lock-free child check safe, and why a parent
  delete is refused (an error naming the constraint) outside READ COMMITTED: a transaction snapshot could miss a
  child committed after it.
- parent key UPDATE (``<name>_key``, per row, only when the id changes; ids never change in Thusa): the same lock
  and refusal while children name the old id.

The errors are PostgreSQL's own (SQLSTATE 23503 ``foreign_key_violation``, its messages, the constraint, table and
column in the diagnostics), so SQLAlchemy raises IntegrityError as before. Like every trigger they are bypassed by
TRUNCATE and by ``session_replication_role = replica`` (so are real foreign keys' triggers under the latter).

Downgrade drops the triggers and functions and adds the six constraints back (which checks the rows).

Revision ID: 0016_batched_foreign_keys
Revises: 0015_second_opinion
Create Date: 2026-12-06 20:45:00.000000

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = "0016_batched_foreign_keys"
down_revision = "0015_second_opinion"
branch_labels = None
depends_on = None

# (constraint, child table, child column, parent table, on delete, few): every parent's key is ``id``. ``few``: a
# statement's rows name few distinct parents (an upload's clinic and user), so the insert check looks each value
# up once; the others (one patient or contact a row) look up row by row, which is cheaper than de-duplicating first.
RELATIONS = (
    ("fk_patients_contact_id_contacts", "patients", "contact_id", "contacts", "RESTRICT", False),
    ("fk_patient_records_patient_id_patients", "patient_records", "patient_id", "patients", "RESTRICT", False),
    ("fk_patient_records_clinic_id_clinics", "patient_records", "clinic_id", "clinics", "RESTRICT", True),
    ("fk_appointments_patient_id_patients", "appointments", "patient_id", "patients", "RESTRICT", False),
    ("fk_appointments_clinic_id_clinics", "appointments", "clinic_id", "clinics", "RESTRICT", True),
    ("fk_appointments_created_by_users", "appointments", "created_by", "users", "SET NULL", True),
)

# TG_ARGV: constraint, column, parent table, 'few' or 'many' (distinct values). The child is the trigger's table.
CHILD_INSERT = r"""
CREATE FUNCTION fk_batched_child_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    constraint_name text := TG_ARGV[0];
    child_column text := TG_ARGV[1];
    parent_table text := TG_ARGV[2];
    source text := CASE TG_ARGV[3] WHEN 'few' THEN format('(SELECT DISTINCT %I FROM new_rows)', TG_ARGV[1])
                                 ELSE 'new_rows' END;
    missing text;
BEGIN
    IF NOT EXISTS (SELECT FROM new_rows) THEN
        RETURN NULL;
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        -- The snapshot is the transaction's: lock what it sees, so a delete committed since fails the lock.
        EXECUTE format('SELECT FROM %1$I p WHERE p.id IN (SELECT n.%2$I FROM new_rows n) FOR KEY SHARE OF p',
                       parent_table, child_column);
    END IF;
    EXECUTE format('SELECT n.%1$I::text FROM %3$s n WHERE n.%1$I IS NOT NULL '
                   'AND NOT EXISTS (SELECT FROM %2$I p WHERE p.id = n.%1$I) LIMIT 1', child_column, parent_table, source)
        INTO missing;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"',
                        TG_TABLE_NAME, constraint_name
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = constraint_name, SCHEMA = TG_TABLE_SCHEMA,
                  TABLE = TG_TABLE_NAME, COLUMN = child_column,
                  DETAIL = format('Key (%s)=(%s) is not present in table "%s".', child_column, missing, parent_table);
    END IF;
    RETURN NULL;
END
$$
"""

# TG_ARGV: constraint, column, parent table. Fires only when the column's value changed.
CHILD_UPDATE = r"""
CREATE FUNCTION fk_batched_child_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    constraint_name text := TG_ARGV[0];
    child_column text := TG_ARGV[1];
    parent_table text := TG_ARGV[2];
    found integer;
    missing text;
BEGIN
    EXECUTE format('SELECT FROM %I p WHERE p.id = ($1).%I FOR KEY SHARE OF p', parent_table, child_column)
        USING NEW;
    GET DIAGNOSTICS found = ROW_COUNT;
    IF found = 0 THEN
        EXECUTE format('SELECT ($1).%I::text', child_column) INTO missing USING NEW;
        IF missing IS NOT NULL THEN
            RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"',
                            TG_TABLE_NAME, constraint_name
                USING ERRCODE = 'foreign_key_violation', CONSTRAINT = constraint_name, SCHEMA = TG_TABLE_SCHEMA,
                      TABLE = TG_TABLE_NAME, COLUMN = child_column,
                      DETAIL = format('Key (%s)=(%s) is not present in table "%s".', child_column, missing,
                                      parent_table);
        END IF;
    END IF;
    RETURN NULL;
END
$$
"""

# TG_ARGV: constraint, child table, child column, 'RESTRICT' or 'SET NULL'. The parent is the trigger's table.
PARENT_DELETE = r"""
CREATE FUNCTION fk_batched_parent_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    constraint_name text := TG_ARGV[0];
    child_table text := TG_ARGV[1];
    child_column text := TG_ARGV[2];
    on_delete text := TG_ARGV[3];
    referenced text;
BEGIN
    IF NOT EXISTS (SELECT FROM old_rows) THEN
        RETURN NULL;
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'delete from table "%" needs READ COMMITTED, not %: foreign key constraint "%" on table "%" '
                        'is checked by a trigger that must see every committed row', TG_TABLE_NAME,
                        upper(current_setting('transaction_isolation')), constraint_name, child_table
            USING ERRCODE = 'feature_not_supported', CONSTRAINT = constraint_name, SCHEMA = TG_TABLE_SCHEMA,
                  TABLE = child_table, COLUMN = child_column;
    END IF;
    -- Waits for every transaction that wrote children (their check saw the parent, taking no lock) and holds new
    -- writers off until this transaction ends; the query below then runs with a snapshot taken after the wait.
    EXECUTE format('LOCK TABLE %I IN SHARE MODE', child_table);
    IF on_delete = 'SET NULL' THEN
        EXECUTE format('UPDATE %1$I SET %2$I = NULL WHERE %2$I IN (SELECT o.id FROM old_rows o)',
                       child_table, child_column);
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT c.%1$I::text FROM %2$I c WHERE c.%1$I IN (SELECT o.id FROM old_rows o) LIMIT 1',
                   child_column, child_table)
        INTO referenced;
    IF referenced IS NOT NULL THEN
        RAISE EXCEPTION 'update or delete on table "%" violates foreign key constraint "%" on table "%"',
                        TG_TABLE_NAME, constraint_name, child_table
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = constraint_name, SCHEMA = TG_TABLE_SCHEMA,
                  TABLE = child_table, COLUMN = child_column,
                  DETAIL = format('Key (id)=(%s) is still referenced from table "%s".', referenced, child_table);
    END IF;
    RETURN NULL;
END
$$
"""

# TG_ARGV: constraint, child table, child column. Fires only when a parent's id changes (never, in Thusa).
PARENT_KEY = r"""
CREATE FUNCTION fk_batched_parent_key() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    constraint_name text := TG_ARGV[0];
    child_table text := TG_ARGV[1];
    child_column text := TG_ARGV[2];
    referenced boolean;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'update of table "%" needs READ COMMITTED, not %: foreign key constraint "%" on table "%" '
                        'is checked by a trigger that must see every committed row', TG_TABLE_NAME,
                        upper(current_setting('transaction_isolation')), constraint_name, child_table
            USING ERRCODE = 'feature_not_supported', CONSTRAINT = constraint_name, SCHEMA = TG_TABLE_SCHEMA,
                  TABLE = child_table, COLUMN = child_column;
    END IF;
    EXECUTE format('LOCK TABLE %I IN SHARE MODE', child_table);
    EXECUTE format('SELECT EXISTS (SELECT FROM %I c WHERE c.%I = $1)', child_table, child_column)
        INTO referenced USING OLD.id;
    IF referenced THEN
        RAISE EXCEPTION 'update or delete on table "%" violates foreign key constraint "%" on table "%"',
                        TG_TABLE_NAME, constraint_name, child_table
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = constraint_name, SCHEMA = TG_TABLE_SCHEMA,
                  TABLE = child_table, COLUMN = child_column,
                  DETAIL = format('Key (id)=(%s) is still referenced from table "%s".', OLD.id, child_table);
    END IF;
    RETURN NEW;
END
$$
"""

FUNCTIONS = {
    "fk_batched_child_insert": CHILD_INSERT,
    "fk_batched_child_update": CHILD_UPDATE,
    "fk_batched_parent_delete": PARENT_DELETE,
    "fk_batched_parent_key": PARENT_KEY,
}


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _triggers(name: str, child: str, column: str, parent: str, on_delete: str,
              few: bool) -> list[tuple[str, str, str]]:  # fmt: skip
    """(trigger, table, CREATE TRIGGER statement) of one relation; the names and values are this module's own."""
    return [
        (f"{name}_insert", child,
         f"CREATE TRIGGER {name}_insert AFTER INSERT ON {child} REFERENCING NEW TABLE AS new_rows "
         f"FOR EACH STATEMENT EXECUTE FUNCTION fk_batched_child_insert('{name}', '{column}', '{parent}', "
         f"'{'few' if few else 'many'}')"),
        (f"{name}_update", child,
         f"CREATE TRIGGER {name}_update AFTER UPDATE OF {column} ON {child} FOR EACH ROW "
         f"WHEN (OLD.{column} IS DISTINCT FROM NEW.{column}) "
         f"EXECUTE FUNCTION fk_batched_child_update('{name}', '{column}', '{parent}')"),
        (f"{name}_delete", parent,
         f"CREATE TRIGGER {name}_delete AFTER DELETE ON {parent} REFERENCING OLD TABLE AS old_rows "
         f"FOR EACH STATEMENT EXECUTE FUNCTION fk_batched_parent_delete('{name}', '{child}', '{column}', "
         f"'{on_delete}')"),
        (f"{name}_key", parent,
         f"CREATE TRIGGER {name}_key BEFORE UPDATE OF id ON {parent} FOR EACH ROW "
         f"WHEN (OLD.id IS DISTINCT FROM NEW.id) "
         f"EXECUTE FUNCTION fk_batched_parent_key('{name}', '{child}', '{column}')"),
    ]  # fmt: skip


def upgrade():
    if not _postgresql():
        return
    for statement in FUNCTIONS.values():
        op.execute(statement)
    for name, child, column, parent, on_delete, few in RELATIONS:
        op.drop_constraint(name, child, type_="foreignkey")
        for _trigger, _table, statement in _triggers(name, child, column, parent, on_delete, few):
            op.execute(statement)


def downgrade():
    if not _postgresql():
        return
    for name, child, column, parent, on_delete, few in RELATIONS:
        for trigger, table, _statement in _triggers(name, child, column, parent, on_delete, few):
            op.execute(f"DROP TRIGGER {trigger} ON {table}")
        op.create_foreign_key(name, child, parent, [column], ["id"], ondelete=on_delete)
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION {function}()")
