"""A page at depth: paginate_cursor vs Django's Paginator (OFFSET) vs a row-comparison keyset.

Every variant returns the page's products with their category names: the repository
preloads categories, the naive page loads each one lazily, the raw query joins them.
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from django.test.utils import CaptureQueriesContext

from benchmarks.context import BenchContext, repository
from benchmarks.harness import (
    NAIVE,
    RAW,
    REPOSITORY,
    ScenarioResult,
    Target,
    Variant,
    VariantMismatchError,
    check_agreement,
    measure_interleaved,
)
from benchmarks.scenarios.pk_lookup import CATEGORY_COLUMNS, PRODUCT_COLUMNS, SELECT_SQL
from domain.models import Product
from repositories.core.pagination import max_page_size

PAGE = 20
ORDER = ["created_at"]


def run(ctx: BenchContext) -> ScenarioResult:
    scale = ctx.scale
    depth = scale.deep_depth
    result = ScenarioResult(
        "deep_page",
        "deep page",
        params={"products": scale.products, "depth": depth, "page_size": PAGE},
    )
    raw = ctx.raw
    with ctx.admin() as conn:
        anchor = conn.execute(
            "SELECT created_at, id FROM products WHERE deleted_at IS NULL"
            " ORDER BY created_at, id OFFSET %s LIMIT 1",
            (depth - 1,),
        ).fetchone()
    assert anchor is not None
    manager = Product.objects.db_manager(ctx.alias)
    raw_sql = (
        SELECT_SQL.split(" WHERE ")[0]
        + " WHERE p.deleted_at IS NULL AND (p.created_at, p.id) > (%s, %s)"
        " ORDER BY p.created_at, p.id LIMIT %s"
    )

    paginator = Paginator(manager.order_by("created_at", "id"), PAGE)

    def naive(_: Any) -> list[Any]:
        # Django's Paginator: COUNT(*), then OFFSET; the template shows each category.
        page = paginator.get_page(depth // PAGE + 1)
        return [(p.id, p.category.name) for p in page]

    def raw_page(_: Any) -> list[Any]:
        return raw.execute(raw_sql, (anchor[0], anchor[1], PAGE + 1)).fetchall()[:PAGE]

    category_name = len(PRODUCT_COLUMNS) + CATEGORY_COLUMNS.index("name")
    variants = [
        Variant(NAIVE, naive, lambda pairs: pairs, repeat=2),
        Variant(RAW, raw_page, lambda rows: [(r[0], r[category_name]) for r in rows], raw=raw),
    ]
    repo_cls = repository("products", "ProductRepository")
    if repo_cls is None:
        result.notes.append("ProductRepository not available: repository variant skipped")
    else:
        repo = repo_cls(using=ctx.alias)
        cursor = _cursor_at_depth(ctx, repo, depth)

        def deep(_: Any) -> list[Any]:
            page = repo.paginate_cursor(order_by=ORDER, after=cursor, limit=PAGE)
            return [(p.id, p.category.name) for p in page.items]

        def first(_: Any) -> list[Any]:
            page = repo.paginate_cursor(order_by=ORDER, limit=PAGE)
            return [(p.id, p.category.name) for p in page.items]

        variants.insert(1, Variant(REPOSITORY, deep, lambda pairs: pairs))
        variants.insert(2, Variant("repository first page", first))
        with CaptureQueriesContext(connections[ctx.alias]) as captured:
            deep(None)
        statement = captured.captured_queries[-1]["sql"]
        with ctx.admin() as conn:
            plan = "\n".join(
                r[0] for r in conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}").fetchall()
            )
        result.extra["repository_sql"] = statement
        result.extra["repository_plan"] = plan
        index_cond = "Index Cond" in plan and (
            "created_at" in plan.split("Index Cond", 1)[1].split("\n", 1)[0]
        )
        result.targets.append(
            Target(
                "EXPLAIN shows an Index Cond on (created_at, id)",
                1.0 if index_cond else 0.0,
                1.0,
                ">=",
            )
        )
    check_agreement(variants, [None], result.variants)
    for variant in variants:
        if variant.name != NAIVE:
            variant.repeat = 100 if scale.name == "full" else 20
    measure_interleaved(
        variants,
        lambda r: [None],
        rounds=scale.rounds,
        warmup=scale.warmup,
        results=result.variants,
    )
    result.targets.append(
        Target(
            "deep page ≤ 2x first page",
            result.ratio(REPOSITORY, "repository first page"),
            2.0,
            "<=",
        )
    )
    result.targets.append(
        Target("≥ 100x faster than OFFSET", result.ratio(NAIVE, REPOSITORY), 100.0, ">=")
    )
    return result


def _cursor_at_depth(ctx: BenchContext, repo: Any, depth: int) -> str:
    """Walk the cursor pages (largest page size) to the row at `depth`; return its cursor.

    The cursor is opaque and signed, so the only honest way to get one at depth is to
    page there, which also checks that paging returns each row once, in order.
    """
    step = max_page_size()
    seen = 0
    cursor = None
    last = None
    while seen < depth:
        ctx.status(f"deep_page: paging to {depth:,} ({seen:,})")
        page = repo.paginate_cursor(order_by=ORDER, after=cursor, limit=min(step, depth - seen))
        items = page.items
        if last is not None and items and (items[0].created_at, items[0].id) <= last:
            raise VariantMismatchError("paginate_cursor went backwards")
        seen += len(items)
        last = (items[-1].created_at, items[-1].id)
        cursor = page.next_cursor
        if not page.has_next:
            raise VariantMismatchError(f"paginate_cursor ended after {seen} rows")
    assert cursor is not None
    return cursor
