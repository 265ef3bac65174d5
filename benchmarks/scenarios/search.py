"""Full-text search, top 20: search() vs hand-written FTS SQL vs icontains (common, rare terms)."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db.models import Q

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
from benchmarks.scenarios.pk_lookup import CATEGORY_COLUMNS, PRODUCT_COLUMNS
from benchmarks.seed import COMMON_TERM, RARE_TERM
from domain.models import Product

LIMIT = 20
#: (label, text): a word in a third of the names, a word in a dozen products, a prefix.
TERMS = (("common", COMMON_TERM), ("rare", RARE_TERM), ("prefix", RARE_TERM[:4]))
MIN_TRUNCATION, MAX_TRUNCATION = 3, 3


#: Reference row: the same ranked search returning only the products' ids.
RAW_IDS = "raw (ids only)"
#: What search() loads: each product (its search vector aside) with its category.
COLUMNS = ", ".join([f"p.{c}" for c in PRODUCT_COLUMNS] + [f"c.{c}" for c in CATEGORY_COLUMNS])


def raw_sql(word: str, *, ids_only: bool = False) -> tuple[str, list[Any]]:
    """Hand-written ranked search for one word typed so far (the repository's semantics:

    the English stem as a prefix, or the word with up to three last letters missing),
    returning what search() returns (products with their category and the rank), or
    only the ids for the reference row.
    """
    shortest = max(MIN_TRUNCATION, len(word) - MAX_TRUNCATION)
    cuts = [word[:end] for end in range(len(word) - 1, shortest - 1, -1)]
    tsquery = " || ".join(["to_tsquery('english', %s)"] + ["to_tsquery('english', %s)"] * len(cuts))
    params = [f"{word}:*", *cuts]
    rank = (
        f"ts_rank_cd(p.search_vector, ({tsquery}))"
        " + ts_rank_cd(p.search_vector, websearch_to_tsquery('english', %s))"
    )
    where = f"p.deleted_at IS NULL AND p.is_active AND p.search_vector @@ ({tsquery})"
    if ids_only:
        sql = f"SELECT p.id FROM products p WHERE {where} ORDER BY {rank} DESC, p.id LIMIT %s"
        return sql, [*params, *params, word, LIMIT]
    sql = (
        f"SELECT {COLUMNS}, {rank} AS rank"
        " FROM products p LEFT JOIN categories c ON c.id = p.category_id"
        f" WHERE {where} ORDER BY rank DESC, p.id LIMIT %s"
    )
    return sql, [*params, word, *params, LIMIT]


def _repo_search(repo: Any, word: str) -> list[Any]:
    return list(repo.search(word, limit=LIMIT))


def _same_input(word: str, round_no: int) -> list[str]:
    return [word]


def run(ctx: BenchContext) -> list[ScenarioResult]:
    scale = ctx.scale
    results = []
    raw = ctx.raw
    manager = Product.objects.db_manager(ctx.alias)

    def naive(word: str) -> list[Any]:
        # A newcomer's search box: substring match, then a stable order.
        return list(
            manager.filter(
                Q(name__icontains=word) | Q(description__icontains=word), is_active=True
            ).order_by("name", "id")[:LIMIT]
        )

    # A prepared statement switches to a generic plan after five runs; for a tsquery
    # whose selectivity depends on the word that plan is up to 2x slower (measured), so
    # the hand-tuned floor keeps custom plans (still no parsing per call).
    raw.execute("SET plan_cache_mode = force_custom_plan", prepare=False)

    def raw_search(word: str) -> list[Any]:
        sql, params = raw_sql(word)
        return raw.execute(sql, params).fetchall()

    def raw_ids(word: str) -> list[Any]:
        sql, params = raw_sql(word, ids_only=True)
        return [row[0] for row in raw.execute(sql, params).fetchall()]

    def row_ids(rows: list[Any]) -> list[Any]:
        return [row[0] for row in rows]

    repo_cls = repository("products", "ProductRepository")
    with ctx.admin() as conn:
        hits = {
            word: {
                r[0]
                for r in conn.execute(
                    "SELECT id FROM products WHERE deleted_at IS NULL AND is_active"
                    " AND (name ILIKE %s OR description ILIKE %s)",
                    (f"%{word}%", f"%{word}%"),
                )
            }
            for _, word in TERMS
        }

    for label, word in TERMS:
        variants = [
            Variant(NAIVE, naive, repeat=max(2, scale.rounds // 2)),
            Variant(RAW, raw_search, row_ids, raw=raw),
            Variant(RAW_IDS, raw_ids, lambda ids: ids, raw=raw),
        ]
        if repo_cls is not None:
            repo = repo_cls(using=ctx.alias)
            variants.insert(
                1,
                Variant(
                    REPOSITORY,
                    partial(_repo_search, repo),
                    lambda ps: [p.id for p in ps],
                ),
            )
        scenario = ScenarioResult(
            f"search_{label}",
            f"search ({label} term)",
            params={
                "products": scale.search_products,
                "limit": LIMIT,
                "query": word,
                "hits": len(hits[word]),
            },
        )
        check_agreement(variants, [word], scenario.variants)
        # icontains cannot rank: it must find the same products (all of them when there
        # are fewer than LIMIT, otherwise LIMIT products that the full-text query matches).
        naive_ids = {p.id for p in naive(word)}
        fts_ids = set(raw_ids(word))
        expected_len = min(LIMIT, len(hits[word]))
        if (
            len(naive_ids) != expected_len
            or not naive_ids <= hits[word]
            or (len(hits[word]) <= LIMIT and naive_ids != fts_ids)
        ):
            raise VariantMismatchError(f"search {word!r}: icontains and full text disagree")
        repeat = 30 if ctx.scale.name == "full" else 5
        for v in variants:
            if v.name != NAIVE:
                v.repeat = repeat
        measure_interleaved(
            variants,
            partial(_same_input, word),
            rounds=scale.rounds,
            warmup=scale.warmup,
            results=scenario.variants,
        )
        scenario.targets.append(
            Target("search() ≤ 2x raw FTS", scenario.ratio(REPOSITORY, RAW), 2.0, "<=")
        )
        scenario.targets.append(
            Target(
                "search() ≥ 50x faster than icontains",
                scenario.ratio(NAIVE, REPOSITORY),
                50.0,
                ">=",
            )
        )
        if repo_cls is None:
            scenario.notes.append("ProductRepository not available: repository variant skipped")
        results.append(scenario)
    raw.execute("RESET plan_cache_mode", prepare=False)
    return results
