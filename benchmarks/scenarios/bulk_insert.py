"""Bulk insert of products with audit rows and initial ledger movements.

create_many vs save() per row (naive) vs COPY (raw), with Django's plain bulk_create of
the products alone as the reference the repository must keep up with.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

from django.db import connections
from django.utils import timezone

from benchmarks.context import BenchContext, repository
from benchmarks.harness import (
    NAIVE,
    RAW,
    REPOSITORY,
    QueryCounter,
    ScenarioResult,
    Target,
    Variant,
    VariantResult,
    measure_interleaved,
)
from benchmarks.seed import clear_commerce
from domain.models import AuditLog, InventoryMovement, Product

BULK_CREATE = "bulk_create (products only)"
STATE_SQL = """
SELECT (SELECT count(*) FROM products),
       (SELECT coalesce(sum(price), 0) FROM products),
       (SELECT coalesce(sum(stock_quantity), 0) FROM products),
       (SELECT md5(coalesce(string_agg(sku || name || category_id::text, ',' ORDER BY sku), ''))
          FROM products),
       (SELECT count(*) FROM inventory_movements WHERE reason = 'initial'),
       (SELECT coalesce(sum(delta), 0) FROM inventory_movements),
       (SELECT count(*) FROM audit_logs a JOIN products p ON a.entity_id = p.id::text
         WHERE a.action = 'created' AND a.entity_type = 'product'),
       (SELECT count(*) FROM products p WHERE stock_quantity <>
          (SELECT coalesce(sum(delta), 0) FROM inventory_movements m WHERE m.product_id = p.id))
"""
STATE_FIELDS = (
    "products",
    "price_sum",
    "stock_sum",
    "sku_digest",
    "movements",
    "delta_sum",
    "audit_rows",
    "ledger_mismatches",
)


def make_rows(count: int, categories: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "sku": f"B{n:08d}",
            "name": f"Bulk product {n}",
            "description": f"Inserted by the bulk benchmark, row {n}",
            "category_id": categories[n % len(categories)],
            "price": Decimal(f"{1 + n % 5000}.{n % 100:02d}"),
            "stock_quantity": 1 + n % 50,
        }
        for n in range(count)
    ]


def run(ctx: BenchContext) -> ScenarioResult:
    scale = ctx.scale
    result = ScenarioResult(
        "bulk_insert",
        "bulk insert",
        params={
            "rows": scale.bulk_rows,
            "naive_rows": scale.bulk_naive_rows,
            "queries_per_op": "per row, counted on a 200-row insert",
        },
    )
    with ctx.admin() as conn:
        categories = [r[0] for r in conn.execute("SELECT id FROM categories ORDER BY slug")]
    alias = ctx.alias
    products = Product.objects.db_manager(alias)
    movements = InventoryMovement.objects.db_manager(alias)
    audit = AuditLog.objects.db_manager(alias)

    def naive(rows: list[dict[str, Any]]) -> int:
        # One save() per row, each in its own autocommit transaction, as tutorials show.
        for row in rows:
            product = Product(**row)
            product.save(using=alias)
            movements.create(product=product, delta=row["stock_quantity"], reason="initial")
            audit.create(
                action="created",
                entity_type="product",
                entity_id=str(product.pk),
                changes={k: str(v) for k, v in row.items()},
            )
        return len(rows)

    def bulk_create(rows: list[dict[str, Any]]) -> int:
        return len(products.bulk_create([Product(**row) for row in rows], batch_size=1000))

    def raw_copy(rows: list[dict[str, Any]]) -> int:
        now = timezone.now()
        ids = [uuid.uuid4() for _ in rows]
        conn = ctx.raw.conn
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(
                "COPY products (id, sku, name, description, category_id, price, stock_quantity,"
                " created_at, updated_at) FROM STDIN"
            ) as copy:
                for pk, row in zip(ids, rows, strict=True):
                    copy.write_row(
                        (
                            pk,
                            row["sku"],
                            row["name"],
                            row["description"],
                            row["category_id"],
                            row["price"],
                            row["stock_quantity"],
                            now,
                            now,
                        )
                    )
            with cur.copy(
                "COPY inventory_movements (product_id, delta, reason, created_at) FROM STDIN"
            ) as copy:
                for pk, row in zip(ids, rows, strict=True):
                    copy.write_row((pk, row["stock_quantity"], "initial", now))
            with cur.copy(
                "COPY audit_logs (occurred_at, created_at, action, entity_type, entity_id, changes)"
                " FROM STDIN"
            ) as copy:
                for pk, row in zip(ids, rows, strict=True):
                    changes = json.dumps({"id": str(pk), **{k: str(v) for k, v in row.items()}})
                    copy.write_row((now, now, "created", "product", str(pk), changes))
        return len(rows)

    def state(_: Any) -> dict[str, Any]:
        with ctx.admin() as conn:
            row = conn.execute(STATE_SQL).fetchone()
        return dict(zip(STATE_FIELDS, row, strict=True))  # type: ignore[arg-type]

    def truncate(_: Any = None) -> None:
        with ctx.admin() as conn:
            clear_commerce(conn)

    repo_cls = repository("products", "ProductRepository")
    repo = repo_cls(using=alias) if repo_cls is not None else None
    # create_many should take the initial stock and write its ledger; when the
    # repository refuses stock_quantity, it inserts the products without stock.
    repo_takes_stock = True
    if repo is not None:
        truncate()
        error_cls = repository("errors", "ValidationError")
        try:
            repo.create_many(make_rows(1, categories))
        except error_cls as exc:
            if "stock_quantity" not in str(exc):
                raise
            repo_takes_stock = False
            result.notes.append(
                "ProductRepository.create_many refuses stock_quantity (read-only field), so it "
                "cannot create products with their initial stock and ledger: measured without "
                f"stock ({exc.__class__.__name__}: {str(exc)[:120]})"
            )

    def repo_create(rows: list[dict[str, Any]]) -> int:
        assert repo is not None
        if not repo_takes_stock:
            rows = [{k: v for k, v in row.items() if k != "stock_quantity"} for row in rows]
        return len(repo.create_many(rows))

    # Agreement: each variant on the same rows, from an empty table, compared by the
    # resulting database state (products, ledger, audit rows).
    sample = make_rows(min(200, scale.bulk_rows), categories)
    states: dict[str, dict[str, Any]] = {}
    per_row_queries: dict[str, float] = {}
    for name, op in (
        (NAIVE, naive),
        (REPOSITORY, repo_create),
        (BULK_CREATE, bulk_create),
        (RAW, raw_copy),
    ):
        if name == REPOSITORY and repo is None:
            continue
        truncate()
        counter = QueryCounter()
        ctx.raw.count, ctx.raw.counting = 0, True
        with connections[alias].execute_wrapper(counter):
            op(sample)
        ctx.raw.counting = False
        per_row_queries[name] = (counter.count + ctx.raw.count) / len(sample)
        states[name] = state(None)
    result.extra["states"] = states
    reference = states[RAW]
    no_ledger = {"movements": 0, "delta_sum": 0}
    for name, got in states.items():
        want = reference
        if name == BULK_CREATE:
            want = {
                **reference,
                **no_ledger,
                "audit_rows": 0,
                "ledger_mismatches": reference["products"],
            }
        elif name == REPOSITORY and not repo_takes_stock:
            want = {**reference, **no_ledger, "stock_sum": 0}
        if got != want:
            diffs = {k: (want[k], got[k]) for k in want if want[k] != got[k]}
            result.notes.append(f"{name} differs from raw (expected, got): {diffs}")
    if REPOSITORY in states:
        repo_state = states[REPOSITORY]
        result.targets.append(
            Target(
                "create_many writes the initial ledger movements (rows without them)",
                float(repo_state["products"] - repo_state["movements"]),
                0.0,
                "<=",
            )
        )

    rows = make_rows(scale.bulk_rows, categories)
    naive_rows = rows[: scale.bulk_naive_rows]
    variants = [
        Variant(NAIVE, lambda _: naive(naive_rows), unit_items=len(naive_rows), repeat=1),
        Variant(BULK_CREATE, lambda _: bulk_create(rows), unit_items=len(rows), repeat=1),
        Variant(RAW, lambda _: raw_copy(rows), unit_items=len(rows), repeat=1),
    ]
    if repo is not None:
        variants.insert(
            1, Variant(REPOSITORY, lambda _: repo_create(rows), unit_items=len(rows), repeat=1)
        )
    else:
        result.notes.append("ProductRepository not available: repository variant skipped")
    for variant in variants:
        result.variants[variant.name] = VariantResult(
            variant.name,
            queries_per_op=round(per_row_queries[variant.name], 4),
            unit_items=variant.unit_items,
        )
    rounds = 3 if scale.name == "full" else scale.rounds
    measure_interleaved(
        variants,
        lambda r: [None],
        rounds=rounds,
        warmup=0,
        results=result.variants,
        before_op=truncate,
        tick=lambda: ctx.status("bulk_insert"),
    )
    truncate()
    repo_rate = result.variants[REPOSITORY].throughput if REPOSITORY in result.variants else None
    bulk_rate = result.variants[BULK_CREATE].throughput
    naive_rate = result.variants[NAIVE].throughput
    result.targets += [
        Target(
            "create_many rows/s ≥ 1.0x bulk_create (products only)",
            repo_rate / bulk_rate if repo_rate and bulk_rate else None,
            1.0,
            ">=",
        ),
        Target(
            "create_many rows/s ≥ 15x naive save() per row",
            repo_rate / naive_rate if repo_rate and naive_rate else None,
            15.0,
            ">=",
        ),
    ]
    return result
