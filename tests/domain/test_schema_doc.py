"""docs/schema.md is generated from the database and the committed copy is current."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from domain.management.commands.schema_doc import default_path, render

pytestmark = pytest.mark.django_db


def test_committed_schema_doc_is_current():
    # Fails when a model or migration changed without `manage.py schema_doc`.
    assert default_path().read_text(encoding="utf-8") == render(), (
        "docs/schema.md is stale: run `manage.py schema_doc` and commit it"
    )


def test_check_passes_on_current_file():
    out = StringIO()
    call_command("schema_doc", "--check", stdout=out)
    assert "up to date" in out.getvalue()


def test_check_fails_on_stale_file(tmp_path):
    stale = tmp_path / "schema.md"
    stale.write_text(render().replace("products", "goods", 1), encoding="utf-8")
    with pytest.raises(CommandError, match="stale") as info:
        call_command("schema_doc", "--check", "--output", str(stale))
    assert info.value.returncode == 1


def test_check_fails_on_missing_file(tmp_path):
    with pytest.raises(CommandError, match="stale"):
        call_command("schema_doc", "--check", "--output", str(tmp_path / "missing.md"))


def test_writes_every_table_column_constraint_index_and_trigger(tmp_path):
    target = tmp_path / "docs" / "schema.md"
    call_command("schema_doc", "--output", str(target), stdout=StringIO())
    text = target.read_text(encoding="utf-8")
    for table in (
        "users",
        "categories",
        "products",
        "inventory_movements",
        "orders",
        "order_items",
        "order_status_history",
        "user_sessions",
        "audit_logs",
        "system_config",
    ):
        assert f"## `{table}`" in text
    assert "```mermaid\nerDiagram" in text
    assert 'users ||--o{ orders : "user_id"' in text
    assert "USING btree (lower((email)::text)) WHERE (deleted_at IS NULL)" in text  # partial
    assert "USING gin (search_vector)" in text
    assert "`products_price_non_negative` | CHECK | `CHECK ((price >= (0)::numeric))`" in text
    assert "| `user_id` | `users` | PROTECT | no | yes |" in text
    assert "| `actor_id` | `users` | DO_NOTHING | yes | no (none in the database) |" in text
    assert "`audit_logs_append_only`" in text
    assert "`categories_no_cycle`" in text
    assert "GENERATED ALWAYS AS" in text
    assert "gen_random_uuid()" in text


def test_render_is_deterministic():
    assert render() == render()
