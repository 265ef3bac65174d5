"""Database-enforced invariants that constraints cannot express.

- audit_logs is append-only: a trigger refuses every UPDATE and DELETE, whoever sends it.
- categories may not form cycles: a trigger refuses a parent that is the row's descendant.
"""

from django.db import migrations

AUDIT_FORWARD = """
CREATE FUNCTION audit_logs_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_logs_append_only
    BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_refuse_change();
"""
AUDIT_REVERSE = """
DROP TRIGGER IF EXISTS audit_logs_append_only ON audit_logs;
DROP FUNCTION IF EXISTS audit_logs_refuse_change();
"""

CATEGORY_FORWARD = """
CREATE FUNCTION categories_refuse_cycle() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER categories_no_cycle
    BEFORE UPDATE OF parent_id ON categories
    FOR EACH ROW EXECUTE FUNCTION categories_refuse_cycle();
"""
CATEGORY_REVERSE = """
DROP TRIGGER IF EXISTS categories_no_cycle ON categories;
DROP FUNCTION IF EXISTS categories_refuse_cycle();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("domain", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(AUDIT_FORWARD, AUDIT_REVERSE),
        migrations.RunSQL(CATEGORY_FORWARD, CATEGORY_REVERSE),
    ]
