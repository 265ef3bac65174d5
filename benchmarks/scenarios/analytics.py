"""Revenue by day over all orders: revenue_by_period vs Python aggregation vs one SQL."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
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
from domain.models import Order

START = datetime(2024, 12, 1, tzinfo=UTC)
END = datetime(2026, 2, 1, tzinfo=UTC)
RAW_SQL = """
SELECT date_trunc('day', placed_at AT TIME ZONE 'UTC') AS day, count(*), sum(total)
FROM orders
WHERE status IN ('paid', 'shipped', 'delivered') AND placed_at >= %s AND placed_at < %s
GROUP BY 1 ORDER BY 1
"""


def normalize(rows: list[Any]) -> list[tuple[str, int, Decimal]]:
    out = []
    for row in rows:
        period, orders, revenue = (
            (row.period, row.orders, row.revenue) if hasattr(row, "period") else row
        )
        out.append((period.date().isoformat(), int(orders), Decimal(revenue)))
    return out


def run(ctx: BenchContext) -> ScenarioResult:
    scale = ctx.scale
    result = ScenarioResult(
        "analytics", "analytics", params={"orders": scale.orders, "period": "day", "days": 365}
    )
    raw = ctx.raw
    manager = Order.objects.db_manager(ctx.alias)

    def naive(span: tuple[datetime, datetime]) -> list[Any]:
        buckets: dict[datetime, list[Any]] = defaultdict(lambda: [0, Decimal("0")])
        for order in manager.filter(placed_at__gte=span[0], placed_at__lt=span[1]):
            if order.status in ("paid", "shipped", "delivered"):
                day = order.placed_at.astimezone(UTC).replace(
                    hour=0, minute=0, second=0, microsecond=0
                )
                buckets[day][0] += 1
                buckets[day][1] += order.total
        return [(day, n, total) for day, (n, total) in sorted(buckets.items())]

    variants = [
        Variant(NAIVE, naive, normalize, repeat=1),
        Variant(RAW, lambda span: raw.execute(RAW_SQL, span).fetchall(), normalize, raw=raw),
    ]
    repo_cls = repository("orders", "OrderRepository")
    if repo_cls is None:
        result.notes.append("OrderRepository not available: repository variant skipped")
    else:
        repo = repo_cls(using=ctx.alias)
        variants.insert(
            1,
            Variant(
                REPOSITORY, lambda span: repo.revenue_by_period(*span, period="day"), normalize
            ),
        )
    span = (START, END)
    check_agreement(
        variants, [span, (START + timedelta(days=40), START + timedelta(days=70))], result.variants
    )
    for variant in variants:
        if variant.name != NAIVE:
            variant.repeat = 5
    measure_interleaved(
        variants,
        lambda r: [span],
        rounds=scale.rounds,
        warmup=scale.warmup,
        results=result.variants,
    )
    result.targets += [
        Target("≤ 1.5x raw SQL", result.ratio(REPOSITORY, RAW), 1.5, "<="),
        Target("≥ 20x faster than Python aggregation", result.ratio(NAIVE, REPOSITORY), 20.0, ">="),
    ]
    return result
