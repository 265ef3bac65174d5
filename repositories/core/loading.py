"""Model instances from rows of hand-written SQL, the way Django's compiler builds them.

Only for statements the ORM cannot express (place_order's single write statement):
each column goes through the converters Django's compiler would apply to it
(`connection.ops.get_db_converters` and the field's own, e.g. `from_db_value`, JSON
decoding), then `Model.from_db` builds the instance. `attach_prefetched` stores
related objects where `prefetch_related` stores them; it is the one place that reaches
into a Django internal (the related manager's `_apply_rel_filters`), and
tests/repositories/test_loading.py checks it against `prefetch_related` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import connections, models

__all__ = ["attach_prefetched", "row_loader"]

ModelT = TypeVar("ModelT", bound=models.Model)

_Converter = Callable[[Any, Any, Any], Any]


def row_loader(
    model: type[ModelT], fields: Sequence[models.Field[Any, Any]], using: str
) -> Callable[[Sequence[Any]], ModelT]:
    """Return `load(values) -> instance` for rows holding `fields`' columns in order.

    The fields not given stay deferred on the instance, as with `QuerySet.only()`.
    """
    connection = connections[using]
    table = model._meta.db_table
    names = [field.attname for field in fields]
    converters: list[tuple[int, Any, list[_Converter]]] = []
    for index, field in enumerate(fields):
        column = field.get_col(table)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((index, column, found))

    def load(values: Sequence[Any]) -> ModelT:
        row = list(values)
        for index, column, functions in converters:
            value = row[index]
            for convert in functions:
                value = convert(value, column, connection)
            row[index] = value
        return model.from_db(using, names, row)

    return load


def attach_prefetched(
    instance: models.Model, related_name: str, objects: list[Any], base: models.QuerySet[Any]
) -> None:
    """Store `objects` as `instance`'s prefetched `related_name` (a reverse foreign key).

    What `prefetch_related` stores: the related manager's queryset (built on `base`)
    with its result cache filled, and the reverse side cached on each object, so
    `instance.<related_name>.all()` needs no query while `.filter()` still queries.
    """
    manager = getattr(instance, related_name)
    remote = manager.field
    for obj in objects:
        remote.set_cached_value(obj, instance)
    queryset = manager._apply_rel_filters(base)
    queryset._result_cache = objects
    queryset._prefetch_done = True
    cache = instance.__dict__.setdefault("_prefetched_objects_cache", {})
    cache[remote.remote_field.cache_name] = queryset
