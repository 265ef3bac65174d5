"""The catalog repositories: the category tree, products, full-text search and stock."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import django_filters as filters
from django.db import connections
from django.db.models import BooleanField, FloatField, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from domain.models import Category, InventoryMovement, Product
from repositories.audit import AuditEntry, diff, record
from repositories.base import BaseRepository
from repositories.bulk import copy_rows
from repositories.error_mapping import constraint_name_of, translate_errors
from repositories.errors import (
    InsufficientStockError,
    InvalidQueryError,
    NotFoundError,
    ValidationError,
)
from repositories.filters import StrictFilterSet
from repositories.keys import parse_uuid
from repositories.pagination import max_page_size
from repositories.transactions import atomic

__all__ = [
    "CategoryFilterSet",
    "CategoryNode",
    "CategoryRepository",
    "ProductFilterSet",
    "ProductRepository",
]

#: Ledger reasons a caller may use with `adjust_stock`; `sale` and `cancellation`
#: belong to orders and are written only by OrderRepository, always with their order.
MANUAL_STOCK_REASONS = frozenset({"initial", "restock", "adjustment"})
#: Longest search text accepted; anything longer is a misuse, not a search.
MAX_SEARCH_LENGTH = 256
#: At most this many words of a search are used (each adds a few tsquery terms).
MAX_SEARCH_WORDS = 12
#: A typed word is also matched through its truncations down to this length, so a
#: partly typed word ("runn") meets the stem of the finished one ("running" → 'run').
MIN_TRUNCATION = 3
MAX_TRUNCATION = 3

_WORD = re.compile(r"[^\W_]+")
#: A quoted phrase (also negated, `-"a b"`, and unclosed at the end) or a run of
#: non-space characters, as websearch_to_tsquery splits its input.
_TOKEN = re.compile(r'-?"[^"]*"?|\S+')


def _require_uuid(entity: str, value: object) -> uuid.UUID:
    key = parse_uuid(value)
    if key is None:
        raise NotFoundError(entity, value)
    return key


# --- Categories --------------------------------------------------------------------------


class CategoryFilterSet(StrictFilterSet):
    """Criteria for categories: name contains, exact slug, parent, roots only."""

    name = filters.CharFilter(lookup_expr="icontains")
    slug = filters.CharFilter()
    parent = filters.UUIDFilter(field_name="parent_id")
    is_root = filters.BooleanFilter(field_name="parent", lookup_expr="isnull")

    class Meta:
        model = Category
        fields: tuple[str, ...] = ()


@dataclass
class CategoryNode:
    """One live category of the tree with its live children, sorted by name."""

    id: uuid.UUID
    name: str
    slug: str
    parent_id: uuid.UUID | None
    depth: int = 0
    children: list[CategoryNode] = field(default_factory=list)

    def walk(self) -> list[CategoryNode]:
        """Return this node and all nodes below it, depth first."""
        nodes = [self]
        for child in self.children:
            nodes.extend(child.walk())
        return nodes


_DESCENDANTS_SQL = """
WITH RECURSIVE tree(id, depth) AS (
    SELECT id, 0 FROM categories WHERE id = %s AND deleted_at IS NULL
    UNION ALL
    SELECT c.id, t.depth + 1
    FROM categories c JOIN tree t ON c.parent_id = t.id
    WHERE c.deleted_at IS NULL
)
SELECT c.*, tree.depth AS depth
FROM tree JOIN categories c ON c.id = tree.id
ORDER BY tree.depth, c.name, c.id
"""

_ANCESTORS_SQL = """
WITH RECURSIVE up(id, parent_id) AS (
    SELECT id, parent_id FROM categories WHERE id = %s
    UNION
    SELECT c.id, c.parent_id FROM categories c JOIN up ON c.id = up.parent_id
)
SELECT id FROM up
"""

#: The ids of a live category and of its live descendants, for `IN (...)` subqueries.
_SUBTREE_IDS_SQL = """
WITH RECURSIVE tree(id) AS (
    SELECT id FROM categories WHERE id = %s AND deleted_at IS NULL
    UNION ALL
    SELECT c.id FROM categories c JOIN tree t ON c.parent_id = t.id
    WHERE c.deleted_at IS NULL
)
SELECT id FROM tree
"""

#: Serializes tree moves: two concurrent moves (A under B, B under A) could each pass
#: the cycle check against the other's old state; one lock key for the whole tree.
_TREE_LOCK_KEY = 0x0CA7E60


class CategoryRepository(BaseRepository[Category]):
    """Read and write categories; a tree without cycles. Deleted ones are invisible."""

    model = Category
    filterset_class = CategoryFilterSet
    sortable_fields = ("name", "slug", "created_at")
    default_order = ("name",)

    def tree(self) -> list[CategoryNode]:
        """Return the live category forest, roots and children sorted by name (1 query).

        Built in Python from one ordered query of live categories. A live category
        whose parent is soft-deleted is unreachable from a live root, so it is shown as
        a root of its own rather than hidden.
        """
        rows = (
            Category.objects.using(self.using)
            .order_by("name", "id")
            .values_list("id", "name", "slug", "parent_id")
        )
        nodes = {
            row[0]: CategoryNode(id=row[0], name=row[1], slug=row[2], parent_id=row[3])
            for row in rows
        }
        roots: list[CategoryNode] = []
        for node in nodes.values():  # insertion order = name order, kept in children
            parent = nodes.get(node.parent_id) if node.parent_id else None
            if parent is None:
                roots.append(node)
            else:
                parent.children.append(node)
        for root in roots:
            self._set_depth(root, 0)
        return roots

    @staticmethod
    def _set_depth(node: CategoryNode, depth: int) -> None:
        stack = [(node, depth)]
        while stack:
            current, level = stack.pop()
            current.depth = level
            stack.extend((child, level + 1) for child in current.children)

    def descendants(self, category_id: uuid.UUID | str) -> list[Category]:
        """Return the live descendants of a live category, breadth first (1 query).

        One recursive CTE; each returned category carries `depth` (1 = child). A
        deleted child hides its whole subtree. Raises NotFoundError for an unknown,
        deleted or malformed id.
        """
        key = _require_uuid("Category", category_id)
        with translate_errors(Category, using=self.using):
            rows = list(Category.objects.using(self.using).raw(_DESCENDANTS_SQL, [key]))
        if not rows:
            raise NotFoundError("Category", category_id)
        return [row for row in rows if row.pk != key]

    def move(self, category_id: uuid.UUID | str, new_parent_id: uuid.UUID | str | None) -> Category:
        """Move a category under `new_parent_id` (None = make it a root); audited.

        Refuses a move under itself or one of its descendants with ValidationError
        (checked here; the `categories_no_cycle` trigger backs it up). Moves are
        serialized by a transaction-level advisory lock so two concurrent moves cannot
        build a cycle together. NotFoundError for unknown/deleted ids.
        """
        key = _require_uuid("Category", category_id)
        parent_key = None if new_parent_id is None else _require_uuid("Category", new_parent_id)
        try:
            return self._move(key, parent_key, category_id, new_parent_id)
        except ValidationError as exc:
            # The categories_no_cycle trigger (SQLSTATE 23514) caught what Python missed.
            if constraint_name_of(exc) == "categories_no_cycle":
                raise ValidationError(
                    {"parent": [f"category {key} cannot be moved under its descendant"]}
                ) from exc.__cause__
            raise

    def _move(
        self,
        key: uuid.UUID,
        parent_key: uuid.UUID | None,
        category_id: object,
        new_parent_id: object,
    ) -> Category:
        with translate_errors(Category, using=self.using), atomic(using=self.using):
            connection = connections[self.using]
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_TREE_LOCK_KEY])
            category = Category.objects.using(self.using).select_for_update().filter(pk=key).first()
            if category is None:
                raise NotFoundError("Category", category_id)
            if parent_key is not None:
                if not Category.objects.using(self.using).filter(pk=parent_key).exists():
                    raise NotFoundError("Category", new_parent_id)
                if self._would_cycle(key, parent_key):
                    raise ValidationError(
                        {
                            "parent": [
                                f"category {key} cannot be moved under itself or one of "
                                f"its descendants ({parent_key})"
                            ]
                        }
                    )
            old_parent = category.parent_id
            if old_parent == parent_key:
                return category
            now = timezone.now()
            Category.objects.using(self.using).filter(pk=key).update(
                parent_id=parent_key, updated_at=now
            )
            category.parent_id = parent_key
            category.updated_at = now
            record(
                [
                    AuditEntry(
                        action="updated",
                        entity_type="category",
                        entity_id=str(key),
                        changes=diff(
                            {"parent_id": str(old_parent) if old_parent else None},
                            {"parent_id": str(parent_key) if parent_key else None},
                        ),
                    )
                ],
                using=self.using,
            )
        return category

    def _would_cycle(self, category_id: uuid.UUID, new_parent_id: uuid.UUID) -> bool:
        """Tell whether `category_id` is `new_parent_id` or one of its ancestors (1 query)."""
        if category_id == new_parent_id:
            return True
        with connections[self.using].cursor() as cursor:
            cursor.execute(_ANCESTORS_SQL, [new_parent_id])
            return any(row[0] == category_id for row in cursor.fetchall())


# --- Products ----------------------------------------------------------------------------


class ProductFilterSet(StrictFilterSet):
    """Criteria for products: text contains, category, price range, activity, stock."""

    name = filters.CharFilter(lookup_expr="icontains")
    sku = filters.CharFilter()
    category = filters.UUIDFilter(field_name="category_id")
    is_active = filters.BooleanFilter()
    currency = filters.CharFilter()
    price_min = filters.NumberFilter(field_name="price", lookup_expr="gte")
    price_max = filters.NumberFilter(field_name="price", lookup_expr="lte")
    stock_min = filters.NumberFilter(field_name="stock_quantity", lookup_expr="gte")
    stock_max = filters.NumberFilter(field_name="stock_quantity", lookup_expr="lte")
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Product
        fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class _SearchQuery:
    """A tsquery as SQL with bound parameters (never user text inside the SQL)."""

    sql: str
    params: tuple[Any, ...]


def build_search_query(text: str) -> _SearchQuery | None:
    """Translate web-search text into a prefix-aware tsquery; None when nothing to search.

    Syntax as websearch_to_tsquery: words are ANDed, `or` separates alternatives,
    `-word` and `-"a phrase"` exclude, `"a phrase"` matches the phrase. Every plain word is matched as
    typed so far: its stem as a prefix (`sho` → 'sho':*) or one of its last letters
    missing (`runn` → 'run', the stem of "running"). Words are reduced to letters and
    digits and always passed as bound parameters.
    """
    groups: list[list[str]] = [[]]
    params: list[Any] = []
    words_used = 0
    for token in _TOKEN.findall(text):
        if token.lower() == "or":
            if groups[-1]:
                groups.append([])
            continue
        if token.startswith(('"', '-"')):
            phrase = " ".join(_WORD.findall(token))
            if phrase:
                negate = "!! " if token.startswith("-") else ""
                groups[-1].append(f"({negate}phraseto_tsquery('english', %s))")
                params.append(phrase)
            continue
        negated = token.startswith("-")
        words = _WORD.findall(token)[: max(0, MAX_SEARCH_WORDS - words_used)]
        words_used += len(words)
        if not words:
            continue
        if negated:
            groups[-1].append("(!! plainto_tsquery('english', %s))")
            params.append(" ".join(words))
            continue
        terms: list[str] = []
        for word in (w.lower() for w in words):
            alternatives = ["to_tsquery('english', %s)"]
            params.append(f"{word}:*")
            shortest = max(MIN_TRUNCATION, len(word) - MAX_TRUNCATION)
            for end in range(len(word) - 1, shortest - 1, -1):
                alternatives.append("to_tsquery('english', %s)")
                params.append(word[:end])
            terms.append("(" + " || ".join(alternatives) + ")")
        term = " && ".join(terms)
        if len(words) > 1:
            # Codes such as SKU "SOX-003" are indexed whole by the parser ('sox', '-003'):
            # also match the token as the parser reads it (plain text, no operators).
            term = f"(({term}) || plainto_tsquery('simple', %s))"
            params.append(token)
        groups[-1].append(term)
    parts = ["(" + " && ".join(group) + ")" for group in groups if group]
    if not parts:
        return None
    return _SearchQuery(sql=" || ".join(parts), params=tuple(params))


class ProductRepository(BaseRepository[Product]):
    """Read and write products, search them, and move their stock through the ledger.

    Soft-deleted products are invisible unless stated. `search_vector` is never loaded.
    `create`/`create_many` accept an initial `stock_quantity` (≥ 0, default 0) and write
    its "initial" ledger movement in the same transaction; updates refuse it.
    """

    model = Product
    lookup_methods = BaseRepository.lookup_methods | {"find_by_sku"}
    filterset_class = ProductFilterSet
    sortable_fields = ("name", "price", "created_at", "stock_quantity", "sku")
    default_order = ("name",)
    select_related = ("category",)
    # The (large) generated search vector is never loaded by reads.
    deferred_fields = ("search_vector",)
    audit_exclude = ("search_vector",)
    # Stock is set when a product is created (with its "initial" movement, see
    # _after_create) and then moves only through adjust_stock/restock and orders, which
    # write the ledger; a generic update could break stock_quantity == sum(movements).
    create_only_fields = ("stock_quantity",)

    def _after_create(self, instances: Sequence[Product]) -> None:
        """Write one "initial" movement per new product with stock (one COPY, or none)."""
        movements = [(p.pk, p.stock_quantity, "initial") for p in instances if p.stock_quantity]
        if movements:
            copy_rows(
                self.using,
                InventoryMovement._meta.db_table,
                ("product_id", "delta", "reason"),
                movements,
            )

    def find_by_sku(self, sku: str) -> Product | None:
        """Return the live product with this SKU (exact), or None (1 query)."""
        if not isinstance(sku, str) or not sku.strip():
            return None
        return self.get_queryset().filter(sku=sku.strip()).first()

    def in_category(
        self,
        category_id: uuid.UUID | str,
        include_descendants: bool = True,
        *,
        include_inactive: bool = False,
    ) -> list[Product]:
        """Return the live, active products of a category and its subtree (1 query).

        Products are sorted by name, then id, with their category loaded. The subtree
        is a recursive CTE inside the same query; a deleted category hides its subtree.
        An unknown, deleted or malformed category gives an empty list.
        """
        key = parse_uuid(category_id)
        if key is None:
            return []
        queryset = self.get_queryset()
        if include_descendants:
            subtree = RawSQL(_SUBTREE_IDS_SQL, [key])  # noqa: S611 - constant SQL, bound id
            queryset = queryset.filter(category_id__in=subtree)
        else:
            queryset = queryset.filter(category_id=key, category__deleted_at__isnull=True)
        if not include_inactive:
            queryset = queryset.filter(is_active=True)
        return list(queryset.order_by("name", "id"))

    def search(
        self, query: str, *, filters: Mapping[str, Any] | None = None, limit: int = 20
    ) -> list[Product]:
        """Return live, active products matching `query`, best first (1 query).

        Web-search syntax (see `build_search_query`) over the stored `search_vector`
        through the GIN index `products_search_gin`; ranked by `ts_rank_cd` (exact
        matches of the whole query count extra), ties broken by id. Each product has a
        `rank` attribute. `limit` is capped at REPOSITORIES["MAX_PAGE_SIZE"]. Text with
        no searchable word gives []; a non-string query, a query longer than
        MAX_SEARCH_LENGTH or a bad limit raises InvalidQueryError.
        """
        if not isinstance(query, str):
            raise InvalidQueryError({"query": ["Search text must be a string."]})
        if len(query) > MAX_SEARCH_LENGTH:
            raise InvalidQueryError(
                {"query": [f"Search text is limited to {MAX_SEARCH_LENGTH} characters."]}
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidQueryError({"limit": ["Limit must be a positive integer."]})
        limit = min(limit, max_page_size())
        # Filters are validated even when the text has nothing to search.
        queryset = self._filtered(filters)
        tsquery = build_search_query(query)
        if tsquery is None:
            return []
        vector = f'"{Product._meta.db_table}"."search_vector"'
        # The SQL is built from constants only; every user-supplied word is a parameter.
        match = RawSQL(f"{vector} @@ ({tsquery.sql})", tsquery.params, BooleanField())  # noqa: S611
        rank = RawSQL(  # noqa: S611
            f"ts_rank_cd({vector}, ({tsquery.sql}))"
            f" + ts_rank_cd({vector}, websearch_to_tsquery('english', %s))",
            (*tsquery.params, query),
            FloatField(),
        )
        queryset = queryset.filter(match, is_active=True)
        queryset = queryset.annotate(rank=rank)
        with translate_errors(Product, using=self.using):
            return list(queryset.order_by("-rank", "id")[:limit])

    def _filtered(self, filters: Mapping[str, Any] | None) -> QuerySet[Product]:
        """Return live products narrowed by validated filters (no query yet)."""
        return ProductFilterSet.apply(filters, self.get_queryset())

    # --- stock ---------------------------------------------------------------------

    def adjust_stock(self, product_id: uuid.UUID | str, delta: int, *, reason: str) -> int:
        """Change a live product's stock by `delta` and write the ledger; return the new stock.

        One conditional UPDATE (stock never below zero, also under concurrent writers),
        one ledger insert and one audit row ("stock_adjusted"), atomically. `reason` is
        one of initial, restock, adjustment (sale/cancellation belong to orders).
        The product's `version` is not changed: stock moves are not edits.
        Raises ValidationError (bad delta or reason), NotFoundError (unknown, deleted,
        malformed id), InsufficientStockError (would go below zero).
        """
        if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0:
            raise ValidationError({"delta": ["Delta must be a non-zero integer."]})
        if not isinstance(reason, str) or reason not in MANUAL_STOCK_REASONS:
            raise ValidationError(
                {"reason": [f"Reason must be one of {', '.join(sorted(MANUAL_STOCK_REASONS))}."]}
            )
        key = _require_uuid("Product", product_id)
        with translate_errors(Product, using=self.using), atomic(using=self.using):
            with connections[self.using].cursor() as cursor:
                cursor.execute(
                    "UPDATE products SET stock_quantity = stock_quantity + %s, updated_at = now()"
                    " WHERE id = %s AND deleted_at IS NULL AND stock_quantity + %s >= 0"
                    " RETURNING stock_quantity",
                    [delta, key, delta],
                )
                row = cursor.fetchone()
                if row is None:
                    cursor.execute(
                        "SELECT stock_quantity FROM products WHERE id = %s AND deleted_at IS NULL",
                        [key],
                    )
                    current = cursor.fetchone()
                    if current is None:
                        raise NotFoundError("Product", product_id)
                    raise InsufficientStockError(key, -delta, current[0])
            stock = int(row[0])
            InventoryMovement.objects.using(self.using).create(
                product_id=key, delta=delta, reason=reason
            )
            record(
                [
                    AuditEntry(
                        action="stock_adjusted",
                        entity_type="product",
                        entity_id=str(key),
                        changes={
                            "stock_quantity": {"old": stock - delta, "new": stock},
                            "delta": delta,
                            "reason": reason,
                        },
                    )
                ],
                using=self.using,
            )
        return stock

    def restock(self, product_id: uuid.UUID | str, quantity: int) -> int:
        """Add `quantity` (> 0) units to a live product's stock; return the new stock."""
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
            raise ValidationError({"quantity": ["Quantity must be a positive integer."]})
        return self.adjust_stock(product_id, quantity, reason="restock")

    def low_stock(self, threshold: int, *, limit: int = 100) -> list[Product]:
        """Return live, active products with at most `threshold` units, lowest first (1 query).

        Sorted by stock, then id, through the (stock_quantity, id) index; `limit` is
        capped at REPOSITORIES["MAX_PAGE_SIZE"].
        """
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
            raise InvalidQueryError({"threshold": ["Threshold must be a non-negative integer."]})
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidQueryError({"limit": ["Limit must be a positive integer."]})
        limit = min(limit, max_page_size())
        queryset = self.get_queryset().filter(is_active=True, stock_quantity__lte=threshold)
        return list(queryset.order_by("stock_quantity", "id")[:limit])

    def stock_ledger(self, product_id: uuid.UUID | str) -> list[InventoryMovement]:
        """Return every stock movement of a product, oldest first, orders loaded (1 query).

        Works for soft-deleted products too (the ledger is history). A product without
        movements costs a second query to tell "no movements" from NotFoundError.
        """
        key = _require_uuid("Product", product_id)
        movements = list(
            InventoryMovement.objects.using(self.using)
            .filter(product_id=key)
            .select_related("order")
            .order_by("created_at", "id")
        )
        if not movements and not Product.all_objects.using(self.using).filter(pk=key).exists():
            raise NotFoundError("Product", product_id)
        return movements
