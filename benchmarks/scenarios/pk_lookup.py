"""Primary-key lookup on the large catalog: find_by_id vs objects.get() vs a prepared SELECT."""

from __future__ import annotations

import random
from typing import Any

from benchmarks.context import BenchContext, repository
from benchmarks.harness import (
    NAIVE,
    RAW,
    REPOSITORY,
    ScenarioResult,
    Target,
    Variant,
    check_agreement,
    measure_interleaved,
)
from domain.models import Category, Product

PRODUCT_COLUMNS = [f.column for f in Product._meta.concrete_fields if f.column != "search_vector"]
CATEGORY_COLUMNS = [f.column for f in Category._meta.concrete_fields]
#: What find_by_id loads: the product (its search vector aside) with its category.
SELECT_SQL = (
    "SELECT "
    + ", ".join(f"p.{c}" for c in PRODUCT_COLUMNS)
    + ", "
    + ", ".join(f"c.{c}" for c in CATEGORY_COLUMNS)
    + " FROM products p LEFT JOIN categories c ON c.id = p.category_id"
    " WHERE p.id = %s AND p.deleted_at IS NULL"
)


#: The same work as find_by_id done naively: get(), then the category on first access.
WITH_CATEGORY = "naive get() + lazy category"


def product_key(product: Any) -> tuple[Any, ...] | None:
    if product is None:
        return None
    return (
        product.id,
        product.sku,
        product.name,
        product.price,
        product.stock_quantity,
        product.version,
    )


def row_key(row: Any) -> tuple[Any, ...] | None:
    if row is None:
        return None
    data = dict(zip(PRODUCT_COLUMNS, row, strict=False))
    return (
        data["id"],
        data["sku"],
        data["name"],
        data["price"],
        data["stock_quantity"],
        data["version"],
    )


def run(ctx: BenchContext) -> ScenarioResult:
    scale = ctx.scale
    result = ScenarioResult("pk_lookup", "pk lookup", params={"products": scale.products})
    total = scale.lookup_ops * (scale.rounds + scale.warmup)
    with ctx.admin() as conn:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM products WHERE deleted_at IS NULL ORDER BY md5(id::text) LIMIT %s",
                (total,),
            )
        ]
    random.Random(1).shuffle(ids)
    raw = ctx.raw
    manager = Product.objects.db_manager(ctx.alias)

    def get_with_category(pid: Any) -> Any:
        product = manager.get(pk=pid)
        product.category  # noqa: B018 - the lazy second query find_by_id saves
        return product

    variants = [
        Variant(NAIVE, lambda pid: manager.get(pk=pid), product_key),
        Variant(WITH_CATEGORY, get_with_category, product_key),
        Variant(RAW, lambda pid: raw.execute(SELECT_SQL, (pid,)).fetchone(), row_key, raw=raw),
    ]
    repo_cls = repository("products", "ProductRepository")
    if repo_cls is not None:
        repo = repo_cls(using=ctx.alias)
        variants.insert(1, Variant(REPOSITORY, repo.find_by_id, product_key))
    else:
        result.notes.append("ProductRepository not available: repository variant skipped")
    # Soft-deleted rows are invisible: find_by_id and the raw SELECT both give None.
    with ctx.admin() as conn:
        deleted = [
            r[0]
            for r in conn.execute("SELECT id FROM products WHERE deleted_at IS NOT NULL LIMIT 5")
        ]
    check_agreement(
        [v for v in variants if v.name not in (NAIVE, WITH_CATEGORY)], deleted, result.variants
    )
    check_agreement(variants, ids[:40], result.variants)
    ops = scale.lookup_ops
    measure_interleaved(
        variants,
        lambda r: ids[(r + scale.warmup) * ops : (r + scale.warmup + 1) * ops],
        rounds=scale.rounds,
        warmup=scale.warmup,
        results=result.variants,
        tick=lambda: ctx.progress.update(0),
    )
    result.targets.append(
        Target("find_by_id ≤ 1.15x objects.get()", result.ratio(REPOSITORY, NAIVE), 1.15, "<=")
    )
    result.extra["ratio_repository_to_raw"] = result.ratio(REPOSITORY, RAW)
    result.extra["ratio_repository_to_get_with_category"] = result.ratio(REPOSITORY, WITH_CATEGORY)
    return result
