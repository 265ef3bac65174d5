"""A simulated request (3 reads): pooled connections vs a new connection per request."""

from __future__ import annotations

from typing import Any

import psycopg
from django.db import connections

from benchmarks.context import BenchContext, repository
from benchmarks.database import BENCH_DIRECT_ALIAS
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
from domain.models import Category, Product, User

RAW_CONNECT = "raw, connect per request"
REPO_CONNECT = "repository, connect per request"
PRODUCT_SQL = "SELECT id, sku FROM products WHERE id = %s"
USER_SQL = "SELECT id, email FROM users WHERE id = %s"
CATEGORY_SQL = "SELECT id, slug FROM categories WHERE id = %s"


def normalize(result: tuple[Any, Any, Any]) -> tuple[Any, ...]:
    product, user, category = result
    if hasattr(product, "sku"):
        return ((product.id, product.sku), (user.id, user.email), (category.id, category.slug))
    return (tuple(product), tuple(user), tuple(category))


def run(ctx: BenchContext) -> ScenarioResult:
    scale = ctx.scale
    result = ScenarioResult(
        "connections",
        "connections",
        params={"queries_per_request": 3, "pool": ctx.db.base.get("OPTIONS", {}).get("pool")},
    )
    with ctx.admin() as conn:
        product_id, category_id = conn.execute(
            "SELECT id, category_id FROM products WHERE deleted_at IS NULL ORDER BY sku LIMIT 1"
        ).fetchone()  # type: ignore[misc]
        user_id = conn.execute("SELECT id FROM users ORDER BY email LIMIT 1").fetchone()[0]  # type: ignore[index]
    item = (product_id, user_id, category_id)
    conninfo = ctx.db.conninfo()
    pool = ctx.db.raw_pool(size=2)

    def naive(keys: tuple[Any, Any, Any]) -> Any:
        # CONN_MAX_AGE = 0 and no pool: Django connects at the first query and closes at
        # the end of the request.
        alias = BENCH_DIRECT_ALIAS
        try:
            return (
                Product.objects.using(alias).get(pk=keys[0]),
                User.objects.using(alias).get(pk=keys[1]),
                Category.objects.using(alias).get(pk=keys[2]),
            )
        finally:
            connections[alias].close()

    def raw_pooled(keys: tuple[Any, Any, Any]) -> Any:
        with pool.connection() as conn:
            return (
                conn.execute(PRODUCT_SQL, (keys[0],)).fetchone(),
                conn.execute(USER_SQL, (keys[1],)).fetchone(),
                conn.execute(CATEGORY_SQL, (keys[2],)).fetchone(),
            )

    def raw_connect(keys: tuple[Any, Any, Any]) -> Any:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            return (
                conn.execute(PRODUCT_SQL, (keys[0],)).fetchone(),
                conn.execute(USER_SQL, (keys[1],)).fetchone(),
                conn.execute(CATEGORY_SQL, (keys[2],)).fetchone(),
            )

    variants = [
        Variant(NAIVE, naive, normalize, aliases=(BENCH_DIRECT_ALIAS,)),
        Variant(RAW, raw_pooled, normalize),
        Variant(RAW_CONNECT, raw_connect, normalize),
    ]
    product_repo = repository("products", "ProductRepository")
    user_repo = repository("users", "UserRepository")
    category_repo = repository("categories", "CategoryRepository")
    if product_repo and user_repo and category_repo:
        repos = (
            product_repo(using=ctx.alias),
            user_repo(using=ctx.alias),
            category_repo(using=ctx.alias),
        )

        direct = tuple(
            cls(using=BENCH_DIRECT_ALIAS) for cls in (product_repo, user_repo, category_repo)
        )

        def request(repositories: tuple[Any, ...], alias: str, keys: tuple[Any, Any, Any]) -> Any:
            # close() at the end of the request: with the project's settings (Django's
            # psycopg pool) it hands the connection back; without a pool it disconnects.
            try:
                return tuple(
                    repo.find_by_id(key) for repo, key in zip(repositories, keys, strict=True)
                )
            finally:
                connections[alias].close()

        variants.insert(
            1, Variant(REPOSITORY, lambda keys: request(repos, ctx.alias, keys), normalize)
        )
        variants.insert(
            2,
            Variant(
                REPO_CONNECT,
                lambda keys: request(direct, BENCH_DIRECT_ALIAS, keys),
                normalize,
                aliases=(BENCH_DIRECT_ALIAS,),
            ),
        )
    else:
        result.notes.append("repositories not available: repository variant skipped")
    try:
        check_agreement(variants, [item], result.variants)
        for variant in variants:
            variant.repeat = scale.request_ops
        measure_interleaved(
            variants,
            lambda r: [item],
            rounds=scale.rounds,
            warmup=scale.warmup,
            results=result.variants,
        )
    finally:
        pool.close()
    for name in (RAW, RAW_CONNECT):
        result.variants[name].queries_per_op = 3
    result.targets.append(
        Target(
            "pooled (psycopg_pool) ≥ 10x faster than a new connection each time",
            result.ratio(RAW_CONNECT, RAW),
            10.0,
            ">=",
        )
    )
    result.extra["ratio_repository_connect_to_pooled"] = result.ratio(REPO_CONNECT, REPOSITORY)
    result.extra["ratio_naive_to_repository"] = result.ratio(NAIVE, REPOSITORY)
    return result
