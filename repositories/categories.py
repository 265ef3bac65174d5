"""The category tree: reads of the tree and subtrees, moves without cycles."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import django_filters as filters
from django.db import connections
from django.utils import timezone

from domain.models import Category
from repositories.core.audit import AuditEntry, diff, record
from repositories.core.base import BaseRepository
from repositories.core.error_mapping import constraint_name_of, translate_errors
from repositories.core.filters import StrictFilterSet
from repositories.core.keys import require_uuid
from repositories.core.transactions import atomic
from repositories.errors import NotFoundError, ValidationError

__all__ = ["SUBTREE_IDS_SQL", "CategoryFilterSet", "CategoryNode", "CategoryRepository"]


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
SUBTREE_IDS_SQL = """
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
    read_methods = BaseRepository.read_methods | {"walk", "tree", "descendants"}
    audit = True
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
        key = require_uuid("Category", category_id)
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
        key = require_uuid("Category", category_id)
        parent_key = None if new_parent_id is None else require_uuid("Category", new_parent_id)
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
