"""The base repository contract as a Protocol: what every repository offers (SPEC §4).

Generic over the model and importing nothing from `domain`, so code of any app can
depend on `IRepository[Note]` instead of a concrete class. `BaseRepository[ModelT]`
satisfies `IRepository[ModelT]`; the signatures here are copied from it and change
with it. Public name: `repositories.interfaces.IRepository`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from django.db import models

from repositories.core.pagination import CursorPage, Page

# Invariant: the model appears inside list[...] and Page[...] results.
ModelT = TypeVar("ModelT", bound=models.Model)


class IRepository(Protocol[ModelT]):
    """Read and write one model's rows: the methods every repository offers.

    Soft-deleted rows are invisible unless `include_deleted=True` is passed where
    offered. Errors are RepositoryError subclasses (repositories.errors).
    """

    # --- reads --------------------------------------------------------------------------

    def find_by_id(self, id: object) -> ModelT | None:
        """Return the live row with this key, or None (also for a malformed key)."""
        ...

    def get_by_id(self, id: object) -> ModelT:
        """Return the live row with this key; raise NotFoundError if missing or deleted."""
        ...

    def find_many(
        self,
        filters: Mapping[str, Any] | None = ...,
        *,
        order_by: Sequence[str] | None = ...,
        limit: int | None = ...,
        offset: int = ...,
        include_deleted: bool = ...,
    ) -> list[ModelT]:
        """Return the rows matching `filters` in the requested order (pk breaks ties)."""
        ...

    def find_first(
        self, filters: Mapping[str, Any] | None = ..., *, order_by: Sequence[str] | None = ...
    ) -> ModelT | None:
        """Return the first matching live row in the requested order, or None."""
        ...

    def count(self, filters: Mapping[str, Any] | None = ..., *, include_deleted: bool = ...) -> int:
        """Return the number of rows matching `filters`."""
        ...

    def exists(
        self, filters: Mapping[str, Any] | None = ..., *, include_deleted: bool = ...
    ) -> bool:
        """Return whether any row matches `filters`."""
        ...

    def paginate(
        self,
        filters: Mapping[str, Any] | None = ...,
        *,
        order_by: Sequence[str] | None = ...,
        page: int = ...,
        page_size: int = ...,
        include_deleted: bool = ...,
    ) -> Page[ModelT]:
        """Return one offset page; InvalidQueryError past the last page."""
        ...

    def paginate_cursor(
        self,
        filters: Mapping[str, Any] | None = ...,
        *,
        order_by: Sequence[str] | None = ...,
        after: str | None = ...,
        limit: int = ...,
        include_deleted: bool = ...,
    ) -> CursorPage[ModelT]:
        """Return the keyset page after the opaque cursor `after` (None: the first page)."""
        ...

    # --- writes -------------------------------------------------------------------------

    def create(self, data: Mapping[str, Any]) -> ModelT:
        """Insert one row from a mapping of field names; return it."""
        ...

    def create_many(
        self, rows: Iterable[Mapping[str, Any]], *, batch_size: int = ...
    ) -> list[ModelT]:
        """Insert many rows set-based; return them with their generated keys."""
        ...

    def update(
        self, id: object, data: Mapping[str, Any], *, expected_version: int | None = ...
    ) -> ModelT:
        """Change fields of a live row; StaleObjectError when `expected_version` moved."""
        ...

    def update_many(self, filters: Mapping[str, Any] | None, data: Mapping[str, Any]) -> int:
        """Apply `data` to every live row matching `filters`; return the number changed."""
        ...

    def delete(self, id: object) -> None:
        """Remove a row for good; raise NotFoundError if missing."""
        ...

    def delete_many(self, filters: Mapping[str, Any] | None, *, include_deleted: bool = ...) -> int:
        """Remove every row matching `filters` for good; return the number removed."""
        ...

    def soft_delete(self, id: object) -> ModelT:
        """Hide a live row (soft-deletable models only); return it."""
        ...

    def restore(self, id: object) -> ModelT:
        """Make a soft-deleted row live again; return it."""
        ...
