"""Data sizes and repetition counts for each benchmark scale."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    name: str
    products: int  # catalog for pk lookup, deep page and the migration
    deep_depth: int  # live rows skipped before the deep page
    search_products: int
    bulk_rows: int  # create_many / bulk_create / COPY
    bulk_naive_rows: int  # save() per row, reported as rows/s
    orders: int  # analytics data
    order_products: int  # products orders are placed over
    users: int
    history_orders: int  # orders of the one user whose history is paged
    history_page: int
    place_seconds: float  # per thread count and variant
    place_threads: tuple[int, ...]
    rounds: int
    warmup: int
    lookup_ops: int  # pk lookups per variant per round
    request_ops: int  # simulated requests per variant per round
    migration_writer_warmup_s: float
    soak_seconds: float = 60.0  # the soak scenario's duration
    soak_threads: int = 4


SCALES: dict[str, Scale] = {
    # The smoke test: seconds.
    "tiny": Scale(
        name="tiny",
        products=3_000,
        deep_depth=1_500,
        search_products=2_000,
        bulk_rows=300,
        bulk_naive_rows=60,
        orders=600,
        order_products=50,
        users=20,
        history_orders=60,
        history_page=50,
        place_seconds=0.25,
        place_threads=(1, 2),
        rounds=2,
        warmup=1,
        lookup_ops=30,
        request_ops=10,
        migration_writer_warmup_s=0.2,
        soak_seconds=1.0,
        soak_threads=2,
    ),
    # CI: well under two minutes, every scenario and every check.
    "small": Scale(
        name="small",
        products=30_000,
        deep_depth=15_000,
        search_products=10_000,
        bulk_rows=3_000,
        bulk_naive_rows=300,
        orders=5_000,
        order_products=200,
        users=100,
        history_orders=120,
        history_page=50,
        place_seconds=1.0,
        place_threads=(1, 2, 4, 8),
        rounds=3,
        warmup=1,
        lookup_ops=100,
        request_ops=30,
        migration_writer_warmup_s=0.5,
        soak_seconds=5.0,
        soak_threads=4,
    ),
    # The figures of docs/performance.md.
    "full": Scale(
        name="full",
        products=1_000_000,
        deep_depth=500_000,
        search_products=200_000,
        bulk_rows=100_000,
        bulk_naive_rows=3_000,
        orders=100_000,
        order_products=1_000,
        users=2_000,
        history_orders=500,
        history_page=50,
        place_seconds=10.0,
        place_threads=(1, 2, 4, 8),
        rounds=5,
        warmup=1,
        lookup_ops=1_000,
        request_ops=200,
        migration_writer_warmup_s=2.0,
        soak_seconds=60.0,
        soak_threads=4,
    ),
}
