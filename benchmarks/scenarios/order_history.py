"""A page of a user's orders with items and products: history_for_user vs lazy ORM vs raw SQL."""

from __future__ import annotations

from typing import Any

from django.db.models import Model

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
from benchmarks.seed import HISTORY_EMAIL
from domain.models import Order, OrderItem, Product, User


def _columns(model: type[Model], alias: str, *, skip: tuple[str, ...] = ()) -> list[str]:
    return [f"{alias}.{f.column}" for f in model._meta.concrete_fields if f.column not in skip]


#: What history_for_user loads, by hand: the page of orders (one more row to know whether
#: a next page exists) with their user, then the page's items with their products (the
#: search vector aside). Two statements were faster than one join (2.6 vs 3.5 ms).
ORDER_COLUMNS = _columns(Order, "o") + _columns(User, "u")
ITEM_COLUMNS = _columns(OrderItem, "i") + _columns(Product, "p", skip=("search_vector",))
PAGE_SQL = (
    f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders o JOIN users u ON u.id = o.user_id"
    " WHERE o.user_id = %s ORDER BY o.placed_at DESC, o.id DESC LIMIT %s"
)
ITEMS_SQL = (
    f"SELECT {', '.join(ITEM_COLUMNS)} FROM order_items i JOIN products p ON p.id = i.product_id"
    " WHERE i.order_id = ANY(%s) ORDER BY i.product_name, i.id"
)
#: Reference row: one statement returning only what a page displays.
RAW_DISPLAY = "raw (display columns only)"
RAW_SQL = """
WITH page AS (
    SELECT id, number, status, total, placed_at FROM orders
    WHERE user_id = %s ORDER BY placed_at DESC, id DESC LIMIT %s
)
SELECT page.id, page.number, page.status, page.total, page.placed_at,
       i.product_id, i.quantity, i.unit_price, i.line_total, p.sku, p.name
FROM page
JOIN order_items i ON i.order_id = page.id
JOIN products p ON p.id = i.product_id
ORDER BY page.placed_at DESC, page.id DESC, i.product_id
"""


def normalize_orders(orders: list[Any]) -> list[Any]:
    return [
        (
            o.id,
            o.number,
            o.total,
            sorted(
                (i.product_id, i.quantity, i.line_total, i.product.sku, i.product.name)
                for i in o.items.all()
            ),
        )
        for o in orders
    ]


def normalize_rows(rows: list[Any]) -> list[Any]:
    out: list[Any] = []
    for row in rows:
        if not out or out[-1][0] != row[0]:
            out.append((row[0], row[1], row[3], []))
        out[-1][3].append((row[5], row[6], row[8], row[9], row[10]))
    return [(a, b, c, sorted(items)) for a, b, c, items in out]


def normalize_pages(result: tuple[list[Any], list[Any]]) -> list[Any]:
    orders, items = result
    column = {name: index for index, name in enumerate(ITEM_COLUMNS)}
    by_order: dict[Any, list[Any]] = {order[0]: [] for order in orders}
    for row in items:
        by_order[row[column["i.order_id"]]].append(
            tuple(
                row[column[name]]
                for name in ("i.product_id", "i.quantity", "i.line_total", "p.sku", "p.name")
            )
        )
    number = ORDER_COLUMNS.index("o.number")
    total = ORDER_COLUMNS.index("o.total")
    return [(o[0], o[number], o[total], sorted(by_order[o[0]])) for o in orders]


def run(ctx: BenchContext) -> ScenarioResult:
    scale = ctx.scale
    page = scale.history_page
    result = ScenarioResult(
        "order_history",
        "order history",
        params={"orders_of_user": scale.history_orders, "page_size": page, "items_per_order": 5},
    )
    with ctx.admin() as conn:
        user_id = conn.execute(
            "SELECT id FROM users WHERE email = %s", (HISTORY_EMAIL,)
        ).fetchone()[0]  # type: ignore[index]
    raw = ctx.raw
    manager = Order.objects.db_manager(ctx.alias)

    def naive(uid: Any) -> list[Any]:
        orders = list(manager.filter(user_id=uid).order_by("-placed_at", "-id")[:page])
        # Touch what a template would show: items and their products, lazily.
        for order in orders:
            for item in order.items.all():
                item.product.name  # noqa: B018
        return orders

    def naive_normalized(orders: list[Any]) -> list[Any]:
        return normalize_orders(orders)

    def raw_page(uid: Any) -> tuple[list[Any], list[Any]]:
        orders = raw.execute(PAGE_SQL, (uid, page + 1)).fetchall()[:page]
        return orders, raw.execute(ITEMS_SQL, ([order[0] for order in orders],)).fetchall()

    variants = [
        Variant(NAIVE, naive, naive_normalized, repeat=max(2, scale.rounds)),
        Variant(RAW, raw_page, normalize_pages, raw=raw),
        Variant(
            RAW_DISPLAY,
            lambda uid: raw.execute(RAW_SQL, (uid, page)).fetchall(),
            normalize_rows,
            raw=raw,
        ),
    ]
    repo_cls = repository("orders", "OrderRepository")
    if repo_cls is None:
        result.notes.append("OrderRepository not available: repository variant skipped")
    else:
        repo = repo_cls(using=ctx.alias)

        def history(uid: Any) -> list[Any]:
            orders = repo.history_for_user(uid, limit=page).items
            for order in orders:
                for item in order.items.all():
                    item.product.name  # noqa: B018
            return orders

        variants.insert(1, Variant(REPOSITORY, history, normalize_orders))
    # Normalizing the ORM results touches every relation, so lazy loads are counted too.
    check_agreement(variants, [user_id], result.variants)
    for variant in variants:
        if variant.name != NAIVE:
            variant.repeat = 20 if scale.name == "full" else 5
    measure_interleaved(
        variants,
        lambda r: [user_id],
        rounds=scale.rounds,
        warmup=scale.warmup,
        results=result.variants,
    )
    repo_result = result.variants.get(REPOSITORY)
    result.targets += [
        Target(
            "≤ 3 queries per page", repo_result.queries_per_op if repo_result else None, 3, "<="
        ),
        Target("≥ 10x faster than naive", result.ratio(NAIVE, REPOSITORY), 10.0, ">="),
        Target("≤ 3x raw", result.ratio(REPOSITORY, RAW), 3.0, "<="),
    ]
    return result
