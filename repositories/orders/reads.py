"""Order reads: an order with its items, a user's order history by keyset pages."""

from __future__ import annotations

import uuid
from typing import Any, cast

from django.db.models import Prefetch, QuerySet

from domain.models import (
    Order,
    OrderItem,
)
from repositories.core.base import BaseRepository
from repositories.core.keys import parse_uuid
from repositories.core.pagination import CursorPage
from repositories.errors import (
    NotFoundError,
)
from repositories.user_model import parse_user_key

__all__ = ["ITEMS_QUERYSET", "OrderReads", "items_prefetch"]


def items_prefetch() -> Prefetch:
    return Prefetch(
        "items",
        queryset=OrderItem.objects.select_related("product")
        .defer("product__search_vector")
        .order_by("product_name", "id"),
    )


#: The queryset of `items_prefetch`, the base of every order's prefetched items.
ITEMS_QUERYSET = cast(QuerySet[OrderItem], items_prefetch().queryset)


class OrderReads(BaseRepository[Order]):
    """Order reads: one order or a user's history, with items and products (2 queries)."""

    def get_with_items(self, order_id: uuid.UUID | str) -> Order:
        """Return an order with its user, items and their products (2 queries).

        Raises NotFoundError for an unknown or malformed id.
        """
        key = parse_uuid(order_id)
        found = self.find_by_id(key) if key is not None else None
        if found is None:
            raise NotFoundError("Order", order_id)
        return found

    def history_for_user(
        self, user_id: Any, *, after: str | None = None, limit: int = 20
    ) -> CursorPage[Order]:
        """Return a user's orders, newest first, as a keyset page (2 queries per page).

        Items and their products are loaded with the page in one more query, so the
        count does not grow with the number of orders. Pass `next_cursor` as `after`
        for the next page; the cursors are those of `paginate_cursor({"user": user_id},
        order_by=["-placed_at"])`. Unknown users get an empty page; malformed ids
        NotFoundError.
        """
        key = parse_user_key(user_id)
        if key is None:
            raise NotFoundError("User", user_id)
        return self._keyset_page(
            self.get_queryset().filter(user_id=key),
            self._sort_keys(["-placed_at"]),
            after,
            limit,
            form_data={"user": str(key)},
        )
