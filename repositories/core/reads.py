"""The reads of every repository: by key, lists, counts, offset and keyset pages."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from django.db.models import QuerySet

from repositories.core.arguments import check_int
from repositories.core.error_mapping import translate_errors
from repositories.core.errors import InvalidQueryError, NotFoundError
from repositories.core.foundation import ModelT, RepositoryFoundation
from repositories.core.pagination import (
    CursorPage,
    Page,
    SortKey,
    decode_cursor,
    encode_cursor,
    keyset_condition,
    max_page_size,
    query_fingerprint,
)

__all__ = ["RepositoryReads"]


class RepositoryReads(RepositoryFoundation[ModelT]):
    """Reads of BaseRepository: every one runs the repository's queryset through
    Django's compiler (docs/repositories.md, "How reads work")."""

    def find_by_id(self, id: object) -> ModelT | None:
        """Return the live row with this key, or None (also for a malformed key).

        One query, plus one per `prefetch_related` lookup.
        """
        pk = self._coerce_pk(id)
        if pk is None:
            return None
        with translate_errors(self.model, using=self.using):
            # A LIMIT 1 fetch rather than .get(): same plan, no exception on the miss path.
            rows = list(self.get_queryset().filter(pk=pk)[:1])
        return rows[0] if rows else None

    def get_by_id(self, id: object) -> ModelT:
        """Return the live row with this key; raise NotFoundError if missing or deleted."""
        found = self.find_by_id(id)
        if found is None:
            raise NotFoundError(self.model.__name__, id)
        return found

    def find_many(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        order_by: Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> list[ModelT]:
        """Return the rows matching `filters` in the requested order (pk breaks ties).

        One query plus one per prefetch. `limit=None` returns every match. Raises
        InvalidQueryError for unknown/invalid filters or sort fields and bad limits.
        """
        keys = self._keys(order_by)
        if limit is not None:
            limit = check_int("limit", limit, minimum=0)
        offset = check_int("offset", offset, minimum=0)
        queryset = self._ordered(self._filtered_queryset(filters, include_deleted)[0], keys)
        if limit is not None:
            queryset = queryset[offset : offset + limit]
        elif offset:
            queryset = queryset[offset:]
        with translate_errors(self.model, using=self.using, reading=True):
            return list(queryset)

    def find_first(
        self, filters: Mapping[str, Any] | None = None, *, order_by: Sequence[str] | None = None
    ) -> ModelT | None:
        """Return the first matching live row in the requested order, or None (one query)."""
        rows = self.find_many(filters, order_by=order_by, limit=1)
        return rows[0] if rows else None

    def count(
        self, filters: Mapping[str, Any] | None = None, *, include_deleted: bool = False
    ) -> int:
        """Return the number of rows matching `filters` (one query)."""
        queryset = self._filtered_queryset(filters, include_deleted, bare=True)[0]
        with translate_errors(self.model, using=self.using, reading=True):
            return queryset.count()

    def exists(
        self, filters: Mapping[str, Any] | None = None, *, include_deleted: bool = False
    ) -> bool:
        """Return whether any row matches `filters` (one query)."""
        queryset = self._filtered_queryset(filters, include_deleted, bare=True)[0]
        with translate_errors(self.model, using=self.using, reading=True):
            return queryset.exists()

    def paginate(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        order_by: Sequence[str] | None = None,
        page: int = 1,
        page_size: int = 20,
        include_deleted: bool = False,
    ) -> Page[ModelT]:
        """Return one offset page (two queries: count, then the page, plus prefetches).

        `page_size` is 1..REPOSITORIES["MAX_PAGE_SIZE"] (larger is an error, not silently
        capped); `page` is 1..pages. Anything else raises InvalidQueryError. For deep
        pages prefer `paginate_cursor`, which does not slow down with depth.
        """
        keys = self._keys(order_by)
        page = check_int("page", page, minimum=1)
        page_size = check_int("page_size", page_size, minimum=1, maximum=max_page_size())
        queryset = self._filtered_queryset(filters, include_deleted)[0]
        with translate_errors(self.model, using=self.using, reading=True):
            total = queryset.count()
            pages = max(1, math.ceil(total / page_size))
            if page > pages:
                raise InvalidQueryError({"page": [f"Page {page} is past the last page ({pages})."]})
            start = (page - 1) * page_size
            items = list(self._ordered(queryset, keys)[start : start + page_size])
        return Page.build(items, total=total, page=page, page_size=page_size)

    def paginate_cursor(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        order_by: Sequence[str] | None = None,
        after: str | None = None,
        limit: int = 20,
        include_deleted: bool = False,
    ) -> CursorPage[ModelT]:
        """Return the keyset page after the cursor `after` (None or "" for the first page).

        One query (plus prefetches) fetching limit + 1 rows. The cursor is opaque and
        HMAC-signed; it holds the last row's sort values and is bound to these filters and
        this order: a tampered, foreign or malformed cursor raises InvalidQueryError, as do
        a bad `limit` (1..MAX_PAGE_SIZE) and bad filters or sort fields. Rows inserted
        behind the cursor are never returned twice or skipped.
        """
        keys = self._keys(order_by)
        limit = check_int("limit", limit, minimum=1, maximum=max_page_size())
        queryset, form_data = self._filtered_queryset(filters, include_deleted)
        return self._keyset_page(
            queryset, keys, after, limit, form_data=form_data, include_deleted=include_deleted
        )

    def _keyset_page(
        self,
        queryset: QuerySet[ModelT],
        keys: Sequence[SortKey],
        after: object,
        limit: int,
        *,
        form_data: Mapping[str, Any],
        include_deleted: bool = False,
    ) -> CursorPage[ModelT]:
        """Return the keyset page of `queryset` after the cursor `after` (see paginate_cursor).

        `form_data` is what the filters that narrowed `queryset` normalize to: the cursor
        is bound to them, so a subclass narrowing the rows itself makes and accepts the
        cursors `paginate_cursor` would for the equivalent filters.
        """
        limit = check_int("limit", limit, minimum=1, maximum=max_page_size())
        fingerprint = query_fingerprint(
            self.model._meta.label,
            type(self).__qualname__,
            include_deleted,
            sorted(form_data.items()),
            [(key.name, key.descending) for key in keys],
        )
        if after is not None and after != "":
            values = decode_cursor(after, fingerprint, keys)
            queryset = queryset.filter(keyset_condition(keys, values))
        with translate_errors(self.model, using=self.using, reading=True):
            rows = list(self._ordered(queryset, keys)[: limit + 1])
        has_next = len(rows) > limit
        items = rows[:limit]
        next_cursor = None
        if has_next:
            last = items[-1]
            next_cursor = encode_cursor([getattr(last, key.name) for key in keys], fingerprint)
        return CursorPage(items=items, next_cursor=next_cursor, has_next=has_next)
