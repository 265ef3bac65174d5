"""Database-enforced invariants that constraints cannot express.

- audit_logs is append-only: a trigger refuses every UPDATE and DELETE, whoever sends it.
- categories may not form cycles: a trigger refuses a parent that is the row's descendant.

Safe on a live database: CREATE TRIGGER locks its table in SHARE ROW EXCLUSIVE mode (DROP
TRIGGER, on the way back, in ACCESS EXCLUSIVE), which blocks every write to it. So the
migration is not atomic: each statement is its own transaction and holds its lock only for
itself, never the audit_logs lock while waiting for the categories one; and each waits at
most lock_timeout (domain/migration_ops.py) before giving up. Every statement is idempotent
(CREATE OR REPLACE, IF EXISTS), so a migration stopped half-way is simply run again.
Databases that applied the earlier, single-transaction version of this file are unaffected:
the schema it builds is the same.
"""

from django.db import migrations

from domain import migration_ops

AUDIT_FORWARD = """
CREATE OR REPLACE FUNCTION audit_logs_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE OR REPLACE TRIGGER audit_logs_append_only
    BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_refuse_change();
"""
AUDIT_REVERSE = """
DROP TRIGGER IF EXISTS audit_logs_append_only ON audit_logs;
DROP FUNCTION IF EXISTS audit_logs_refuse_change();
"""

CATEGORY_FORWARD = """
CREATE OR REPLACE FUNCTION categories_refuse_cycle() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.parent_id IS NOT NULL AND EXISTS (
        WITH RECURSIVE ancestors(id) AS (
            SELECT NEW.parent_id
            UNION
            SELECT c.parent_id FROM categories c JOIN ancestors a ON c.id = a.id
            WHERE c.parent_id IS NOT NULL
        )
        SELECT 1 FROM ancestors WHERE id = NEW.id
    ) THEN
        RAISE EXCEPTION 'category % cannot be moved under its own descendant %',
            NEW.id, NEW.parent_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'categories_no_cycle';
    END IF;
    RETURN NEW;
END;
$$;
CREATE OR REPLACE TRIGGER categories_no_cycle
    BEFORE UPDATE OF parent_id ON categories
    FOR EACH ROW EXECUTE FUNCTION categories_refuse_cycle();
"""
CATEGORY_REVERSE = """
DROP TRIGGER IF EXISTS categories_no_cycle ON categories;
DROP FUNCTION IF EXISTS categories_refuse_cycle();
"""


class Migration(migration_ops.Migration):
    # One transaction per statement (see the module docstring); requires PostgreSQL 14+
    # for CREATE OR REPLACE TRIGGER (the project supports 15+).
    atomic = False

    dependencies = [
        ("domain", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(AUDIT_FORWARD, AUDIT_REVERSE),
        migrations.RunSQL(CATEGORY_FORWARD, CATEGORY_REVERSE),
    ]
