"""No public repository method lets a raw exception escape, whatever a caller passes.

For every public method of every repository (discovered, tests/repositories/
repository_calls.py) and every parameter of its signature, the valid call of CALLS is
made again with that one argument replaced by each value of HOSTILE: strings PostgreSQL
cannot store (lone surrogate, NUL) or that are oversize, NaN and infinities, floats,
booleans, integers beyond bigint, wrong types and containers, None, a naive datetime,
timedelta.max. Where the valid argument is a container (filters, data, rows, items, a
JSON value) each of its entries is replaced too (`data['price']`, `items[0][1]`).

Each call must return normally or raise a `repositories.errors.RepositoryError` (SPEC §4:
no raw TypeError, OverflowError, DataError, ... ever escapes), and a refused call must
write nothing: every domain table holds the same rows afterwards (a count and a hash of
each row's text), and the caller's transaction is still usable.

Known gaps that are not fixed yet are listed in KNOWN_GAPS: those combinations run as
their own strict xfail cases (and are skipped by the main loop), so the gap is visible
and the case fails loudly once it is fixed.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from django.apps import apps
from django.core.cache import cache
from django.db import connection
from django.utils.safestring import SafeString

from domain.models import Product
from repositories import ProductRepository
from repositories.errors import InvalidQueryError, RepositoryError, ValidationError
from repositories.users import UserRepository
from tests.factories import ProductFactory, UserFactory
from tests.repositories.repository_calls import (
    CALLS,
    Call,
    Key,
    enumerated_methods,
    public_methods,
    repository_classes,
)

# --- the hostile values --------------------------------------------------------------------

#: (label, factory): a fresh value per call, so a method mutating a container cannot
#: change the next case.
HOSTILE: list[tuple[str, Callable[[], Any]]] = [
    ("text", lambda: "abc"),
    ("numeric-text", lambda: "1e309"),
    ("surrogate", lambda: "\ud800"),
    ("nul", lambda: "a\x00b"),
    ("oversize-str", lambda: "x" * 100_000),
    ("nan", lambda: float("nan")),
    ("inf", lambda: float("inf")),
    ("-inf", lambda: -float("inf")),
    ("float", lambda: 2.5),
    ("bool", lambda: True),
    ("zero", lambda: 0),
    ("negative", lambda: -1),
    ("huge-int", lambda: 2**70),
    ("-huge-int", lambda: -(2**70)),
    ("empty-list", list),
    ("empty-dict", dict),
    ("list", lambda: ["a"]),
    ("dict", lambda: {"a": 1}),
    ("int-key-dict", lambda: {1: "a"}),
    ("tuple", lambda: ("a",)),
    ("set", lambda: {"a"}),
    ("object", object),
    ("bytes", lambda: b"bytes"),
    ("none", lambda: None),
    ("decimal-nan", lambda: Decimal("NaN")),
    ("decimal-inf", lambda: Decimal("Infinity")),
    ("decimal-huge", lambda: Decimal("1E+1000")),
    ("naive-datetime", lambda: datetime(2024, 1, 1, 12, 0)),
    ("min-datetime", lambda: datetime.min.replace(tzinfo=UTC)),
    ("max-datetime", lambda: datetime.max.replace(tzinfo=UTC)),
    ("max-timedelta", lambda: timedelta.max),
]

HOSTILE_LABELS = [label for label, _ in HOSTILE]

#: Combinations (class, method, argument path, hostile label) that still let a raw
#: exception through, with the reason; each runs as a strict xfail (test_known_gap).
KNOWN_GAPS: dict[tuple[str, str, str, str], str] = {}


# --- the cases -----------------------------------------------------------------------------


def _parameters(cls: type, method: str) -> list[str]:
    """Return the parameter names of `cls.method` after `self` (its signature)."""
    signature = inspect.signature(getattr(cls, method))
    return [
        name
        for name, parameter in list(signature.parameters.items())[1:]
        if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]


def _cases() -> list[tuple[str, str, str]]:
    return [
        (class_name, method, parameter)
        for class_name, cls in sorted(repository_classes().items())
        for method in public_methods(cls)
        for parameter in _parameters(cls, method)
    ]


CASES = _cases()


def _id(case: tuple[str, ...]) -> str:
    return ".".join(case)


# --- building a call with one argument replaced ---------------------------------------------


def _parts(call: Call) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
    """Return (bound method, args, kwargs) of a CALLS call."""
    if isinstance(call, partial):
        return call.func, call.args, dict(call.keywords)
    return call, (), {}


def _paths(value: Any, depth: int = 0) -> Iterator[tuple[Any, ...]]:
    """Yield the paths (keys and indexes) of the entries of `value` worth replacing: each
    key of a mapping, the first element of a list or tuple, one level further down."""
    if depth >= 2:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield (key,)
            for rest in _paths(item, depth + 1):
                yield (key, *rest)
    elif isinstance(value, list | tuple) and value:
        yield (0,)
        for rest in _paths(value[0], depth + 1):
            yield (0, *rest)


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """Return a copy of `value` with the entry at `path` replaced by `new`."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, Mapping):
        copied = dict(value)
        copied[head] = _replaced(value[head], rest, new)
        return copied
    items = list(value)
    items[head] = _replaced(items[head], rest, new)
    return tuple(items) if isinstance(value, tuple) else items


def _label(parameter: str, path: tuple[Any, ...]) -> str:
    return parameter + "".join(f"[{step!r}]" for step in path)


class _Variant:
    """The valid call of one (class, method), rebuilt on demand, with one argument path
    replaced."""

    def __init__(self, key: Key, parameter: str) -> None:
        self.key = key
        self.parameter = parameter
        self._call: Call | None = None
        #: The tables' fingerprint, while no call has changed them since it was taken.
        self.fingerprint: list[tuple[Any, ...]] | None = None

    def base(self) -> tuple[Callable[..., Any], inspect.BoundArguments]:
        if self._call is None:
            cache.clear()  # SystemConfigRepository.get must see this test's rows
            self._call = CALLS[self.key]()
        func, args, kwargs = _parts(self._call)
        bound = inspect.signature(func).bind_partial(*args, **kwargs)
        return func, bound

    def spent(self) -> None:
        """Forget the call (a successful variant may have changed its rows)."""
        self._call = None
        self.fingerprint = None

    def paths(self) -> list[tuple[Any, ...]]:
        _, bound = self.base()
        given = bound.arguments.get(self.parameter)
        return [(), *_paths(given)] if self.parameter in bound.arguments else [()]

    def call(self, path: tuple[Any, ...], value: Any) -> Any:
        func, bound = self.base()
        arguments = dict(bound.arguments)
        arguments[self.parameter] = _replaced(arguments.get(self.parameter), path, value)
        replaced = inspect.BoundArguments(bound.signature, arguments)
        return func(*replaced.args, **replaced.kwargs)


# --- nothing written -----------------------------------------------------------------------


def _fingerprint_sql() -> str:
    tables = sorted(
        model._meta.db_table
        for model in apps.get_app_config("domain").get_models(include_auto_created=True)
        if not model._meta.proxy and model._meta.managed
    )
    quote = connection.ops.quote_name
    return " UNION ALL ".join(
        f"SELECT '{table}', count(*), coalesce(sum(hashtext(t::text)::bigint), 0) "
        f"FROM {quote(table)} t"
        for table in tables
    )


FINGERPRINT_SQL = _fingerprint_sql()


def _fingerprint() -> list[tuple[Any, ...]]:
    """Rows per domain table and a hash of their contents (any write changes it)."""
    with connection.cursor() as cursor:
        cursor.execute(FINGERPRINT_SQL)
        return list(cursor.fetchall())


# --- running one case ----------------------------------------------------------------------


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} chars)"


class _QueryCounter:
    """An execute wrapper counting the statements a call sends."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Callable[..., Any], *args: Any) -> Any:
        self.count += 1
        return execute(*args)


def _run(variant: _Variant, path: tuple[Any, ...], label: str, make: Callable[[], Any]) -> str:
    """Make one hostile call; return "" when it behaved, else what went wrong.

    A call that sent no statement cannot have written anything; after one that did, the
    tables' fingerprint is compared with the one before.
    """
    class_name, method = variant.key
    where = f"{class_name}.{method}({_label(variant.parameter, path)}={label}: {_short(make())})"
    variant.base()  # its rows exist before the fingerprint
    try:
        before = variant.fingerprint or _fingerprint()
    except Exception as exc:  # an earlier failure of this case broke the transaction
        return f"{where}: not run, the transaction is unusable: {exc!r}"
    variant.fingerprint = before
    queries = _QueryCounter()
    try:
        with connection.execute_wrapper(queries):
            variant.call(path, make())
    except RepositoryError:
        if not queries.count:
            return ""  # refused before any SQL
        try:
            after = _fingerprint()
        except Exception as exc:  # the caller's transaction was left unusable
            variant.spent()
            return f"{where}: refused, but the transaction is unusable: {exc!r}"
        if after != before:
            variant.spent()
            changed = sorted({row[0] for row in set(after) ^ set(before)})
            return f"{where}: refused, but wrote to {changed}"
        return ""
    except Exception as exc:  # what this test exists to find
        variant.spent()
        return f"{where}: raised {type(exc).__name__}: {exc}\n{_tail(exc)}"
    if queries.count and _fingerprint() != before:
        variant.spent()  # a write: the next variant starts from fresh rows
    return ""


def _tail(exc: BaseException) -> str:
    """The last frames of `exc`'s traceback inside the project (not the driver's)."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if "/repositories/" in frame.filename and "/tests/" not in frame.filename
    ]
    return "".join(traceback.format_list(frames[-4:]))


def _known(key: Key, parameter: str, path: tuple[Any, ...], label: str) -> bool:
    return (*key, _label(parameter, path), label) in KNOWN_GAPS


@pytest.mark.django_db
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_hostile_argument_raises_only_repository_errors_and_writes_nothing(case):
    class_name, method, parameter = case
    variant = _Variant((class_name, method), parameter)
    failures = [
        failure
        for path in variant.paths()
        for label, make in HOSTILE
        if not _known(variant.key, parameter, path, label)
        if (failure := _run(variant, path, label, make))
    ]
    assert not failures, f"{len(failures)} hostile call(s) misbehaved:\n" + "\n".join(failures)


def _gap_cases() -> list[Any]:
    return [
        pytest.param(gap, id="-".join(gap), marks=pytest.mark.xfail(strict=True, reason=reason))
        for gap, reason in sorted(KNOWN_GAPS.items())
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("gap", _gap_cases())
def test_known_gap(gap):
    class_name, method, argument, label = gap
    parameter = argument.split("[", 1)[0]
    variant = _Variant((class_name, method), parameter)
    paths = {_label(parameter, path): path for path in variant.paths()}
    make = dict(HOSTILE)[label]
    failure = _run(variant, paths[argument], label, make)
    assert not failure, failure


def test_cases_cover_every_public_method_with_parameters():
    with_parameters = {(class_name, method) for class_name, method, _ in CASES}
    assert with_parameters <= set(CALLS)
    assert len(CASES) > 250
    # Every method is either a case or takes no argument at all.
    for class_name, method in enumerated_methods() - with_parameters:
        assert _parameters(repository_classes()[class_name], method) == []
    for class_name, method, argument, label in KNOWN_GAPS:
        assert (class_name, method, argument.split("[", 1)[0]) in CASES
        assert label in HOSTILE_LABELS


# --- regressions: values Django would have converted silently -------------------------------

NOT_TEXT = [b"bytes", 5, 2.5, Decimal("1.5"), object(), datetime(2024, 1, 1, tzinfo=UTC)]


@pytest.mark.django_db
def test_text_fields_refuse_what_is_not_a_string_instead_of_storing_its_str():
    """str(b"x") is "b'x'", str(object()) an address: neither is stored, on any write path."""
    product = ProductFactory.create(name="Walnut")
    user = UserFactory.create(first_name="Ada")
    repository = ProductRepository()
    for value in NOT_TEXT:
        writes: dict[str, Call] = {
            "create": partial(repository.create, {"sku": "T-1", "name": value, "price": "1.00"}),
            "create_many": partial(
                repository.create_many, [{"sku": "T-2", "name": value, "price": "1.00"}]
            ),
            "update": partial(repository.update, product.pk, {"name": value}),
            "update_many": partial(repository.update_many, {"sku": product.sku}, {"name": value}),
            "user.update": partial(UserRepository().update, user.pk, {"first_name": value}),
        }
        for write, call in writes.items():
            with pytest.raises(ValidationError) as excinfo:
                call()
            assert list(excinfo.value.errors.values()) == [["Enter a string."]], (write, value)
    product.refresh_from_db()
    user.refresh_from_db()
    assert (product.name, product.version, user.first_name) == ("Walnut", 1, "Ada")
    assert not Product.all_objects.filter(sku__startswith="T-").exists()
    # A str subclass is a string.
    assert repository.update(product.pk, {"name": SafeString("Oak")}).name == "Oak"


@pytest.mark.django_db
def test_in_category_flags_take_only_booleans():
    """Flags are not read by truthiness: the string "false" would include descendants."""
    product = ProductFactory.create()
    in_category: Callable[..., Any] = ProductRepository().in_category  # hostile on purpose
    for flag in ("include_descendants", "include_inactive"):
        for value in ("false", 0, 1, None, [], object()):
            with pytest.raises(InvalidQueryError) as excinfo:
                in_category(product.category_id, **{flag: value})
            assert excinfo.value.errors == {flag: ["Enter true or false."]}
    assert in_category(product.category_id, False, include_inactive=True) == [product]
