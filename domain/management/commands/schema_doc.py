"""Write docs/schema.md from the live catalog and the models: `manage.py schema_doc [--check]`.

Tables, columns and constraints come from PostgreSQL's catalog (so CHECKs, partial unique
indexes and triggers are documented as the database enforces them); `on_delete` and the
ER diagram come from the model metadata (Django, not the database, carries out `on_delete`).
The output is sorted and free of database names and OIDs, so it is identical on every
database migrated to the same state; `--check` exits 1 when the file differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections, models

COLUMNS_SQL = """
SELECT a.attname,
       format_type(a.atttypid, a.atttypmod),
       a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid),
       a.attgenerated = 's',
       a.attidentity <> ''
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
CONSTRAINTS_SQL = """
SELECT c.conname, c.contype, pg_get_constraintdef(c.oid)
FROM pg_constraint c
WHERE c.conrelid = %s::regclass
ORDER BY c.contype, c.conname
"""
INDEXES_SQL = """
SELECT i.relname, pg_get_indexdef(x.indexrelid), x.indisunique, x.indpred IS NOT NULL
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = %s::regclass
ORDER BY i.relname
"""
TRIGGERS_SQL = """
SELECT t.tgname, pg_get_triggerdef(t.oid)
FROM pg_trigger t
WHERE t.tgrelid = %s::regclass AND NOT t.tgisinternal
ORDER BY t.tgname
"""
PARTITION_KEY_SQL = """
SELECT pg_get_partkeydef(c.oid) FROM pg_class c WHERE c.oid = %s::regclass AND c.relkind = 'p'
"""
CONSTRAINT_KINDS = {
    "c": "CHECK",
    "f": "FOREIGN KEY",
    "p": "PRIMARY KEY",
    "u": "UNIQUE",
    "x": "EXCLUDE",
}


@dataclass(frozen=True)
class Relation:
    """A foreign key as the models declare it."""

    column: str
    target: str
    on_delete: str
    nullable: bool
    db_constraint: bool


def domain_models() -> list[type[models.Model]]:
    """Return the domain app's tables' models (incl. many-to-many tables), by table name."""
    config = apps.get_app_config("domain")
    found = [m for m in config.get_models(include_auto_created=True) if not m._meta.proxy]
    return sorted(found, key=lambda m: m._meta.db_table)


def relations_of(model: type[models.Model]) -> list[Relation]:
    """Return the model's foreign keys with their Django-side `on_delete`."""
    result = []
    for f in model._meta.concrete_fields:
        if isinstance(f, models.ForeignKey):
            assert f.related_model is not None  # narrowing for mypy; always set once loaded
            result.append(
                Relation(
                    column=f.column,
                    target=f.related_model._meta.db_table,
                    on_delete=getattr(f.remote_field.on_delete, "__name__", ""),
                    nullable=f.null,
                    db_constraint=bool(getattr(f, "db_constraint", True)),
                )
            )
    return sorted(result, key=lambda r: r.column)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def _mermaid_type(field: models.Field[Any, Any], connection: Any) -> str:
    # A GeneratedField has no type of its own: its output field's is the column's.
    typed = getattr(field, "output_field", None) or field
    db_type = typed.db_type(connection) or typed.get_internal_type()
    return db_type.split("(")[0].replace(" ", "_")


def mermaid(models_: list[type[models.Model]], connection: Any) -> list[str]:
    """Return a Mermaid erDiagram: entities with their columns, and one line per FK."""
    lines = ["```mermaid", "erDiagram"]
    for model in models_:
        table = model._meta.db_table
        lines.append(f"    {table} {{")
        for f in model._meta.concrete_fields:
            marks = "PK" if f.primary_key else "FK" if isinstance(f, models.ForeignKey) else ""
            lines.append(f"        {_mermaid_type(f, connection)} {f.column} {marks}".rstrip())
        lines.append("    }")
    for model in models_:
        for rel in relations_of(model):
            left = "|o" if rel.nullable else "||"
            lines.append(f'    {rel.target} {left}--o{{ {model._meta.db_table} : "{rel.column}"')
    return [*lines, "```", ""]


def render(using: str = "default") -> str:
    """Return the whole of docs/schema.md for the database `using`."""
    connection = connections[using]
    models_ = domain_models()
    out = [
        "# Database schema",
        "",
        "Generated by `manage.py schema_doc` from the PostgreSQL catalog and the `domain`",
        "models; do not edit by hand (`manage.py schema_doc --check` fails when stale).",
        "",
        "## Entity-relationship diagram",
        "",
        *mermaid(models_, connection),
    ]
    with connection.cursor() as cursor:
        for model in models_:
            table = model._meta.db_table
            out += [f"## `{table}` ({model.__name__})", ""]
            doc = (model.__doc__ or "").strip().splitlines()
            if doc:
                out += [doc[0], ""]
            cursor.execute(COLUMNS_SQL, [table])
            columns = []
            for name, type_, not_null, default, generated, identity in cursor.fetchall():
                if generated:
                    default = f"GENERATED ALWAYS AS {default} STORED"
                elif identity:
                    default = "GENERATED BY DEFAULT AS IDENTITY"
                columns.append([f"`{name}`", type_, "no" if not_null else "yes", default or ""])
            out += ["### Columns", "", *_table(["column", "type", "null", "default"], columns)]

            cursor.execute(PARTITION_KEY_SQL, [table])
            partitioned = cursor.fetchone()
            if partitioned:
                # The partitions themselves change over time: only the key is documented.
                out += [
                    "### Partitioning",
                    "",
                    f"`PARTITION BY {partitioned[0]}`; the partitions are not listed here "
                    "(see docs/scaling.md).",
                    "",
                ]

            cursor.execute(CONSTRAINTS_SQL, [table])
            constraints = [
                [f"`{name}`", CONSTRAINT_KINDS.get(kind, kind), f"`{definition}`"]
                for name, kind, definition in sorted(cursor.fetchall())
            ]
            out += ["### Constraints", "", *_table(["name", "kind", "definition"], constraints)]

            relations = relations_of(model)
            if relations:
                rows = [
                    [
                        f"`{r.column}`",
                        f"`{r.target}`",
                        r.on_delete,
                        "yes" if r.nullable else "no",
                        "yes" if r.db_constraint else "no (none in the database)",
                    ]
                    for r in relations
                ]
                headers = ["column", "references", "on_delete (Django)", "null", "DB constraint"]
                out += ["### Foreign keys", "", *_table(headers, rows)]

            cursor.execute(INDEXES_SQL, [table])
            indexes = [
                [f"`{name}`", "yes" if unique else "", "yes" if partial else "", f"`{definition}`"]
                for name, definition, unique, partial in cursor.fetchall()
            ]
            out += [
                "### Indexes",
                "",
                *_table(["name", "unique", "partial", "definition"], indexes),
            ]

            cursor.execute(TRIGGERS_SQL, [table])
            triggers = [[f"`{name}`", f"`{definition}`"] for name, definition in cursor.fetchall()]
            if triggers:
                out += ["### Triggers", "", *_table(["name", "definition"], triggers)]
    return "\n".join(out).rstrip() + "\n"


def default_path() -> Path:
    """Return the documented location of the schema description."""
    return Path(settings.BASE_DIR) / "docs" / "schema.md"


class Command(BaseCommand):
    help = "Write docs/schema.md from the database catalog; --check fails when it is stale."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true", help="Exit 1 if the file is stale.")
        parser.add_argument("--output", type=Path, default=None, help="Default: docs/schema.md.")
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["output"] or default_path()
        text = render(options["database"])
        if options["check"]:
            current = path.read_text(encoding="utf-8") if path.exists() else ""
            if current != text:
                raise CommandError(f"{path} is stale: run `manage.py schema_doc`.", returncode=1)
            self.stdout.write(f"{path} is up to date.")
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self.stdout.write(f"Wrote {path} ({len(domain_models())} tables).")
