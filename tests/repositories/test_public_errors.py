"""Every public repository method surfaces database failures as typed RepositoryErrors.

The methods are discovered, not listed: every BaseRepository subclass of the `repositories`
package and every public method it has (inherited ones included). Each has an entry in
CALLS that builds valid arguments from fresh rows; the tests then break the connection
under it (pg_terminate_backend from a second connection) and check that the method
raises DatabaseUnavailableError and that the next call works. Other typed paths: a
read-only session, a real serialization failure, a foreign-key failure inside the
caller's transaction, a lost COMMIT and an exhausted connection pool.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import pkgutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any, cast

import psycopg
import pytest
from django.core.cache import cache
from django.db import connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import load_backend
from django.utils import timezone

import repositories
from domain.models import OrderStatusHistory, Product, SystemConfig
from repositories import CategoryRepository, ProductRepository
from repositories.audit_log import AuditLogRepository, ReadOnlyRepositoryError
from repositories.configuration import SystemConfigRepository
from repositories.core.base import BaseRepository
from repositories.core.error_mapping import DATABASE_ERRORS
from repositories.core.transactions import atomic, transactional
from repositories.errors import (
    DatabaseUnavailableError,
    ReadOnlyDatabaseError,
    RepositoryError,
    TransactionConflictError,
    ValidationError,
)
from repositories.orders import OrderRepository
from repositories.sessions import SessionRepository
from repositories.users import UserRepository
from tests.factories import (
    AuditLogFactory,
    CategoryFactory,
    OrderFactory,
    ProductFactory,
    SystemConfigFactory,
    UserFactory,
    UserSessionFactory,
)

Call = Callable[[], Any]
Key = tuple[str, str]

THREAD_TIMEOUT = 30


# --- discovery ---------------------------------------------------------------------------


def _repository_classes() -> dict[str, type[BaseRepository[Any]]]:
    """Return every concrete BaseRepository subclass defined in the `repositories` package."""
    for module in pkgutil.iter_modules(repositories.__path__):
        importlib.import_module(f"repositories.{module.name}")
    found: dict[str, type[BaseRepository[Any]]] = {}
    stack = list(BaseRepository.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        # Test and sample repositories (tests.*) are not part of the product; the parts
        # a repository is assembled from (OrderReads, ...) have no model of their own.
        if cls.__module__.split(".", 1)[0] == "repositories" and hasattr(cls, "model"):
            found[cls.__name__] = cls
    return found


def _public_methods(cls: type) -> list[str]:
    """Return the public methods of `cls`, inherited ones included.

    Routines only: `model` and `filterset_class` are callable (they are classes) but
    are configuration, not methods. `get_queryset` builds no query and is not wrapped.
    """
    return [
        name
        for name, _ in inspect.getmembers(cls, inspect.isroutine)
        if not name.startswith("_") and name != "get_queryset"
    ]


def _enumerated() -> set[Key]:
    return {
        (name, method)
        for name, cls in _repository_classes().items()
        for method in _public_methods(cls)
    }


# --- the call table ----------------------------------------------------------------------


def _hex() -> str:
    return uuid.uuid4().hex[:12]


def _window() -> tuple[Any, Any]:
    now = timezone.now()
    return now - timedelta(days=1), now + timedelta(days=1)


@dataclass(frozen=True)
class _Subject:
    """How to make rows and arguments for one repository's inherited methods."""

    repository: type[BaseRepository[Any]]
    row: Callable[..., Any]  # a fresh live row (factory)
    filters: Callable[[Any], dict[str, Any]]  # filters matching that row
    new: Callable[[], dict[str, Any]]  # data for create()
    change: dict[str, Any]  # data for update()
    soft_deletable: bool = False

    def deleted_row(self) -> Any:
        return self.row(deleted=True) if self.soft_deletable else self.row()


SUBJECTS: dict[str, _Subject] = {
    "UserRepository": _Subject(
        UserRepository,
        UserFactory.create,
        lambda u: {"email": u.email},
        lambda: {"email": f"new-{_hex()}@example.com", "first_name": "Ada"},
        {"first_name": "Grace"},
        soft_deletable=True,
    ),
    "CategoryRepository": _Subject(
        CategoryRepository,
        CategoryFactory.create,
        lambda c: {"slug": c.slug},
        lambda: {"name": "New", "slug": f"new-{_hex()}"},
        {"name": "Renamed"},
        soft_deletable=True,
    ),
    "ProductRepository": _Subject(
        ProductRepository,
        ProductFactory.create,
        lambda p: {"sku": p.sku},
        lambda: {"sku": f"NEW-{_hex()}", "name": "New", "price": Decimal("1.50")},
        {"name": "Renamed"},
        soft_deletable=True,
    ),
    "OrderRepository": _Subject(
        OrderRepository,
        OrderFactory.create,
        lambda o: {"number": o.number},
        lambda: {"number": f"ORD-{_hex()}", "subtotal": "1.00", "total": "1.00"},
        {},  # every Order column is read-only; an empty update still bumps the version
    ),
    "SessionRepository": _Subject(
        SessionRepository,
        UserSessionFactory.create,
        lambda s: {"user": str(s.user_id)},
        lambda: {"user": UserFactory.create().pk, "expires_at": timezone.now() + timedelta(days=1)},
        {"user_agent": "curl/8"},
    ),
    "SystemConfigRepository": _Subject(
        SystemConfigRepository,
        SystemConfigFactory.create,
        lambda e: {"key": e.key},
        lambda: {"key": f"new.{_hex()}", "value": [1, 2]},
        {"value": {"enabled": False}},
    ),
    "AuditLogRepository": _Subject(
        AuditLogRepository,
        AuditLogFactory.create,
        lambda a: {"entity_type": a.entity_type, "entity_id": a.entity_id},
        lambda: {"action": "created", "entity_type": "product", "entity_id": "1"},
        {"action": "updated"},
    ),
}

#: Builders for the methods every repository inherits from BaseRepository.
INHERITED: dict[str, Callable[[_Subject], Call]] = {
    "count": lambda s: partial(s.repository().count, s.filters(s.row())),
    "exists": lambda s: partial(s.repository().exists, s.filters(s.row())),
    "find_by_id": lambda s: partial(s.repository().find_by_id, s.row().pk),
    "get_by_id": lambda s: partial(s.repository().get_by_id, s.row().pk),
    "find_first": lambda s: partial(s.repository().find_first, s.filters(s.row())),
    "find_many": lambda s: partial(s.repository().find_many, s.filters(s.row()), limit=10),
    "paginate": lambda s: partial(s.repository().paginate, s.filters(s.row()), page_size=5),
    "paginate_cursor": lambda s: partial(s.repository().paginate_cursor, s.filters(s.row())),
    "create": lambda s: partial(s.repository().create, s.new()),
    "create_many": lambda s: partial(s.repository().create_many, [s.new(), s.new()]),
    "update": lambda s: partial(s.repository().update, s.row().pk, s.change),
    "update_many": lambda s: partial(s.repository().update_many, s.filters(s.row()), s.change),
    "delete": lambda s: partial(s.repository().delete, s.row().pk),
    "delete_many": lambda s: partial(s.repository().delete_many, s.filters(s.row())),
    "soft_delete": lambda s: partial(s.repository().soft_delete, s.row().pk),
    "restore": lambda s: partial(s.repository().restore, s.deleted_row().pk),
}


def _seeded(factory: Callable[[], Any], call: Call) -> Call:
    """Return `call` after creating a row for it to read."""
    factory()
    return call


def _validate_call() -> Call:
    _, token = SessionRepository().create_session(UserFactory.create().pk)
    return partial(SessionRepository().validate, token)


def _descendants_call() -> Call:
    child = CategoryFactory.create(parent=CategoryFactory.create())
    return partial(CategoryRepository().descendants, child.parent_id)


def _move_call() -> Call:
    child = CategoryFactory.create(parent=CategoryFactory.create())
    return partial(CategoryRepository().move, child.pk, CategoryFactory.create().pk)


#: Builders for the methods a repository declares itself (or overrides with another
#: signature). Each returns a zero-argument call with valid arguments over fresh rows.
OWN: dict[Key, Callable[[], Call]] = {
    ("UserRepository", "find_active_users"): lambda: partial(
        UserRepository().find_active_users, {"email": UserFactory.create().email}
    ),
    ("UserRepository", "find_by_email"): lambda: partial(
        UserRepository().find_by_email, UserFactory.create().email
    ),
    ("UserRepository", "set_password"): lambda: partial(
        UserRepository().set_password, UserFactory.create().pk, "violet-staircase-1947"
    ),
    ("UserRepository", "verify_email"): lambda: partial(
        UserRepository().verify_email, UserFactory.create(email_verified=False).pk
    ),
    ("CategoryRepository", "descendants"): _descendants_call,
    ("CategoryRepository", "move"): _move_call,
    ("CategoryRepository", "tree"): lambda: _seeded(
        CategoryFactory.create, CategoryRepository().tree
    ),
    ("ProductRepository", "adjust_stock"): lambda: partial(
        ProductRepository().adjust_stock, ProductFactory.with_stock(5).pk, -2, reason="adjustment"
    ),
    ("ProductRepository", "restock"): lambda: partial(
        ProductRepository().restock, ProductFactory.with_stock(1).pk, 3
    ),
    ("ProductRepository", "find_by_sku"): lambda: partial(
        ProductRepository().find_by_sku, ProductFactory.create().sku
    ),
    ("ProductRepository", "in_category"): lambda: partial(
        ProductRepository().in_category, ProductFactory.create().category_id
    ),
    ("ProductRepository", "low_stock"): lambda: partial(
        ProductRepository().low_stock, ProductFactory.with_stock(2).stock_quantity
    ),
    ("ProductRepository", "search"): lambda: partial(
        ProductRepository().search, ProductFactory.create(name="Walnut bookcase").name
    ),
    ("ProductRepository", "stock_ledger"): lambda: partial(
        ProductRepository().stock_ledger, ProductFactory.with_stock(4).pk
    ),
    ("OrderRepository", "average_order_value"): lambda: partial(
        OrderRepository().average_order_value, *_window()
    ),
    ("OrderRepository", "revenue_by_period"): lambda: partial(
        OrderRepository().revenue_by_period, *_window(), period="week"
    ),
    ("OrderRepository", "top_products"): lambda: partial(
        OrderRepository().top_products, *_window(), limit=5
    ),
    ("OrderRepository", "status_breakdown"): lambda: _seeded(
        OrderFactory.create, OrderRepository().status_breakdown
    ),
    ("OrderRepository", "get_with_items"): lambda: partial(
        OrderRepository().get_with_items, OrderFactory.create().pk
    ),
    ("OrderRepository", "history_for_user"): lambda: partial(
        OrderRepository().history_for_user, OrderFactory.create().user_id, limit=5
    ),
    ("OrderRepository", "place_order"): lambda: partial(
        OrderRepository().place_order,
        UserFactory.create().pk,
        [(ProductFactory.with_stock(3).pk, 2)],
        idempotency_key=f"key-{_hex()}",
    ),
    ("OrderRepository", "transition"): lambda: partial(
        OrderRepository().transition, OrderFactory.create().pk, "paid", note="paid by card"
    ),
    ("OrderRepository", "cancel"): lambda: partial(
        OrderRepository().cancel, OrderFactory.create().pk
    ),
    ("SessionRepository", "create_session"): lambda: partial(
        SessionRepository().create_session, UserFactory.create().pk, ip_address="198.51.100.7"
    ),
    ("SessionRepository", "validate"): _validate_call,
    ("SessionRepository", "revoke"): lambda: partial(
        SessionRepository().revoke, UserSessionFactory.create().pk, reason="logout"
    ),
    ("SessionRepository", "revoke_all"): lambda: partial(
        SessionRepository().revoke_all, UserSessionFactory.create().user_id
    ),
    ("SessionRepository", "active_for_user"): lambda: partial(
        SessionRepository().active_for_user, UserSessionFactory.create().user_id
    ),
    ("SessionRepository", "cleanup_expired"): lambda: partial(
        SessionRepository().cleanup_expired, batch_size=10
    ),
    ("SessionRepository", "suspicious_users"): lambda: partial(
        SessionRepository().suspicious_users, window=timedelta(hours=1), min_distinct_ips=1
    ),
    ("SystemConfigRepository", "get"): lambda: partial(
        SystemConfigRepository().get, SystemConfigFactory.create().key
    ),
    ("SystemConfigRepository", "set"): lambda: partial(
        SystemConfigRepository().set, SystemConfigFactory.create().key, {"enabled": False}
    ),
    ("SystemConfigRepository", "all"): lambda: _seeded(
        SystemConfigFactory.create, SystemConfigRepository().all
    ),
    # SystemConfigRepository.delete takes a key, not an id.
    ("SystemConfigRepository", "delete"): lambda: partial(
        SystemConfigRepository().delete, SystemConfigFactory.create().key
    ),
    ("AuditLogRepository", "by_actor"): lambda: partial(
        AuditLogRepository().by_actor, AuditLogFactory.create(actor=UserFactory.create()).actor_id
    ),
    ("AuditLogRepository", "for_entity"): lambda: partial(
        AuditLogRepository().for_entity, "product", AuditLogFactory.create().entity_id
    ),
}


def _build_calls() -> dict[Key, Callable[[], Call]]:
    calls: dict[Key, Callable[[], Call]] = {}
    for class_name, subject in SUBJECTS.items():
        for method, build in INHERITED.items():
            calls[(class_name, method)] = partial(build, subject)
    calls.update(OWN)
    return calls


CALLS = _build_calls()

#: Methods that refuse every input by design, before any query: the tests check that
#: they raise this error and send nothing, rather than breaking a connection under them.
NO_QUERY: dict[Key, type[Exception]] = {
    # Orders are created only by place_order and never deleted (cancel instead).
    ("OrderRepository", "create"): ValidationError,
    ("OrderRepository", "create_many"): ValidationError,
    ("OrderRepository", "delete"): ValidationError,
    ("OrderRepository", "delete_many"): ValidationError,
    # The audit trail is append-only: every write is refused.
    **{
        ("AuditLogRepository", method): ReadOnlyRepositoryError
        for method in (
            "create",
            "create_many",
            "update",
            "update_many",
            "delete",
            "delete_many",
            "soft_delete",
            "restore",
        )
    },
    # Sessions are opened only by create_session, which issues the token.
    ("SessionRepository", "create"): ValidationError,
    ("SessionRepository", "create_many"): ValidationError,
    # Models without a soft-delete column: soft_delete/restore are refused.
    ("OrderRepository", "soft_delete"): ValidationError,
    ("OrderRepository", "restore"): ValidationError,
    ("SessionRepository", "soft_delete"): ValidationError,
    ("SessionRepository", "restore"): ValidationError,
    ("SystemConfigRepository", "soft_delete"): ValidationError,
    ("SystemConfigRepository", "restore"): ValidationError,
}

DATABASE_CALLS = sorted(set(CALLS) - set(NO_QUERY))

#: One method per repository for the "caller's own transaction" variant (writes where
#: the repository has any).
IN_CALLERS_TRANSACTION: dict[str, str] = {
    "UserRepository": "update",
    "CategoryRepository": "move",
    "ProductRepository": "adjust_stock",
    "OrderRepository": "transition",
    "SessionRepository": "revoke",
    "SystemConfigRepository": "set",
    "AuditLogRepository": "find_many",
}


def _id(key: Key) -> str:
    return ".".join(key)


# --- helpers -----------------------------------------------------------------------------


def _sqlstate(exc: BaseException | None) -> str | None:
    """Return the SQLSTATE of the first psycopg error in `exc`'s cause/context chain."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, psycopg.Error) and exc.sqlstate:
            return exc.sqlstate
        exc = exc.__cause__ or exc.__context__
    return None


def _assert_database_cause(exc: BaseException) -> None:
    assert isinstance(exc.__cause__, DATABASE_ERRORS), repr(exc.__cause__)


def _kill_backend_of(conn: BaseDatabaseWrapper) -> None:
    """Terminate `conn`'s server process from a second, independent connection and wait
    until it is gone (works with and without Django's pool)."""
    conn.ensure_connection()
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    params = conn.get_connection_params()
    for name in ("pool", "cursor_factory", "context"):
        params.pop(name, None)
    with psycopg.connect(**params, autocommit=True) as killer:
        row = killer.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()
        assert row is not None and row[0] is True, f"backend {pid} not terminated"
        deadline = time.monotonic() + 5
        while killer.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            assert time.monotonic() < deadline, f"backend {pid} still alive"
            time.sleep(0.005)


def _in_thread(func: Call) -> Any:
    """Run `func` to completion in another thread, on its own connection; re-raise errors."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = func()
        except BaseException as exc:  # handed back to the test thread
            box["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(THREAD_TIMEOUT)
    assert not thread.is_alive(), "worker thread hung"
    if "error" in box:
        raise box["error"]
    return box.get("result")


def _raising_through(call: Call, seen: list[BaseException]) -> Any:
    """Run `call`, recording what it raises (then re-raising it)."""
    try:
        return call()
    except BaseException as exc:
        seen.append(exc)
        raise


# --- the table covers every public method -----------------------------------------------


def test_call_table_covers_exactly_every_public_repository_method():
    enumerated = _enumerated()
    assert len(enumerated) > 100  # discovery found the repositories at all
    assert set(CALLS) == enumerated, {
        "missing": sorted(enumerated - set(CALLS)),
        "stale": sorted(set(CALLS) - enumerated),
    }
    assert set(NO_QUERY) <= enumerated
    assert set(IN_CALLERS_TRANSACTION) == set(_repository_classes())
    assert set(IN_CALLERS_TRANSACTION.items()) <= set(DATABASE_CALLS)


def test_every_public_repository_method_is_wrapped_in_error_translation():
    classes = _repository_classes()
    unwrapped = [
        key
        for key in sorted(_enumerated())
        if not getattr(getattr(classes[key[0]], key[1]), "__repository_labelled__", False)
    ]
    assert unwrapped == []


@pytest.mark.django_db
@pytest.mark.parametrize("key", sorted(NO_QUERY), ids=_id)
def test_refusing_method_raises_its_error_without_query(key, django_assert_num_queries):
    call = CALLS[key]()
    with django_assert_num_queries(0), pytest.raises(NO_QUERY[key]) as excinfo:
        call()
    assert type(excinfo.value) is NO_QUERY[key]


# --- a lost connection -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("key", DATABASE_CALLS, ids=_id)
def test_public_method_raises_database_unavailable_when_backend_dies(key):
    call = CALLS[key]()
    cache.clear()  # SystemConfigRepository.get must reach the database
    _kill_backend_of(connection)
    with pytest.raises(RepositoryError) as excinfo:
        call()
    assert type(excinfo.value) is DatabaseUnavailableError
    _assert_database_cause(excinfo.value)
    assert connection.connection is None  # the broken connection was discarded
    assert connection.in_atomic_block is False
    cache.clear()
    call()  # the next call gets a working connection


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("class_name", sorted(IN_CALLERS_TRANSACTION))
def test_public_method_in_callers_atomic_raises_database_unavailable_when_backend_dies(
    class_name,
):
    key = (class_name, IN_CALLERS_TRANSACTION[class_name])
    call = CALLS[key]()
    raised: list[BaseException] = []
    with pytest.raises(BaseException) as block_error, atomic():
        _kill_backend_of(connection)
        _raising_through(call, raised)
    assert [type(exc) for exc in raised] == [DatabaseUnavailableError]
    _assert_database_cause(raised[0])
    # The block leaves with the method's typed error, not a raw driver error.
    assert block_error.value is raised[0]
    assert connection.in_atomic_block is False
    assert connection.connection is None
    call()  # the next call, outside, works


# --- other typed paths -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_write_in_read_only_transaction_raises_read_only_database_error():
    category = CategoryFactory.create()
    data = {"sku": "RO-1", "name": "Read-only", "price": Decimal("2.00"), "category": category.pk}
    raised: list[BaseException] = []
    with pytest.raises(ReadOnlyDatabaseError) as block_error, atomic(read_only=True):
        _raising_through(partial(ProductRepository().create, data), raised)
    assert [type(exc) for exc in raised] == [ReadOnlyDatabaseError]
    assert block_error.value is raised[0]
    assert _sqlstate(raised[0].__cause__) == "25006"
    assert not Product.all_objects.filter(sku="RO-1").exists()
    assert ProductRepository().create(data).sku == "RO-1"  # read-write again


@pytest.mark.django_db(transaction=True)
def test_write_with_default_transaction_read_only_raises_read_only_database_error():
    category = CategoryFactory.create()
    entry = SystemConfigFactory.create(key="ro.key", value=1)
    data = {"sku": "RO-2", "name": "Read-only", "price": Decimal("2.00"), "category": category.pk}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET default_transaction_read_only = on")
        with pytest.raises(RepositoryError) as create_error:
            ProductRepository().create(data)
        with pytest.raises(RepositoryError) as set_error:
            SystemConfigRepository().set("ro.key", 2)
        assert ProductRepository().count({"sku": "RO-2"}) == 0  # reads still work
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET default_transaction_read_only = off")
    for error in (create_error.value, set_error.value):
        assert type(error) is ReadOnlyDatabaseError
        assert _sqlstate(error.__cause__) == "25006"
    entry.refresh_from_db()
    assert (entry.value, entry.version) == (1, 1)
    assert not Product.all_objects.filter(sku="RO-2").exists()


def _read_then_set(key: str, value: Any) -> SystemConfig:
    """One serializable transaction that reads `key`, then writes it, through the repository."""
    repository = SystemConfigRepository()
    with atomic(isolation="serializable"):
        repository.get(key)
        return repository.set(key, value)


@pytest.mark.django_db(transaction=True)
def test_serialization_failure_in_callers_atomic_raises_transaction_conflict():
    SystemConfigFactory.create(key="race", value=0)
    repository = SystemConfigRepository()
    raised: list[BaseException] = []
    with pytest.raises(TransactionConflictError) as block_error, atomic(isolation="serializable"):
        assert repository.get("race") == 0  # our snapshot
        _in_thread(partial(_read_then_set, "race", "theirs"))  # commits meanwhile
        _raising_through(partial(repository.set, "race", "ours"), raised)
    assert [type(exc) for exc in raised] == [TransactionConflictError]
    assert block_error.value is raised[0]
    assert raised[0].attempts == 1
    assert _sqlstate(raised[0].__cause__) == "40001"
    entry = SystemConfig.objects.get(key="race")
    assert (entry.value, entry.version) == ("theirs", 2)


@pytest.mark.django_db(transaction=True)
def test_transactional_retries_serialization_failure_from_repository_method():
    SystemConfigFactory.create(key="retry", value=0)
    repository = SystemConfigRepository()
    attempts: list[int] = []

    @transactional(isolation="serializable", max_attempts=3)
    def read_then_set() -> SystemConfig:
        attempts.append(len(attempts) + 1)
        repository.get("retry")
        if len(attempts) == 1:  # only the first attempt meets a concurrent writer
            _in_thread(partial(_read_then_set, "retry", "theirs"))
        return repository.set("retry", "ours")

    entry = read_then_set()
    assert attempts == [1, 2]
    stored = SystemConfig.objects.get(key="retry")
    assert (entry.value, stored.value, stored.version) == ("ours", "ours", 3)


@pytest.mark.django_db(transaction=True)
def test_transactional_raises_transaction_conflict_when_every_attempt_conflicts():
    SystemConfigFactory.create(key="always", value=0)
    repository = SystemConfigRepository()
    attempts: list[int] = []

    @transactional(isolation="serializable", max_attempts=2)
    def read_then_set() -> SystemConfig:
        attempts.append(len(attempts) + 1)
        repository.get("always")
        _in_thread(partial(_read_then_set, "always", len(attempts)))
        return repository.set("always", "ours")

    with pytest.raises(TransactionConflictError) as excinfo:
        read_then_set()
    assert attempts == [1, 2]
    assert excinfo.value.attempts == 2
    assert _sqlstate(excinfo.value.__cause__) == "40001"
    assert SystemConfig.objects.get(key="always").value == 2


@pytest.mark.django_db(transaction=True)
def test_transition_with_unknown_actor_raises_validation_error_and_caller_can_commit():
    order = OrderFactory.create()
    ghost = uuid.uuid4()
    raised: list[BaseException] = []
    with atomic():
        with pytest.raises(ValidationError) as excinfo:
            _raising_through(
                partial(OrderRepository().transition, order.pk, "paid", actor=ghost), raised
            )
        # The failed call rolled back to its savepoint: the caller's transaction goes on.
        SystemConfigRepository().set("after.failed.transition", True)
    assert raised == [excinfo.value]
    assert "actor" in excinfo.value.errors
    assert _sqlstate(excinfo.value.__cause__) == "23503"
    assert SystemConfig.objects.get(key="after.failed.transition").value is True
    order.refresh_from_db()
    assert (order.status, order.version) == ("pending", 1)
    assert not OrderStatusHistory.objects.filter(order=order, to_status="paid").exists()


@pytest.mark.django_db(transaction=True)
def test_atomic_raises_database_unavailable_when_connection_dies_before_commit():
    category = CategoryFactory.create()
    data = {"sku": "LOST-1", "name": "Lost", "price": Decimal("3.00"), "category": category.pk}
    body_finished = False
    with pytest.raises(RepositoryError) as excinfo, atomic():
        ProductRepository().create(data)
        _kill_backend_of(connection)
        body_finished = True
    assert body_finished  # so the error came from COMMIT, not from a statement
    assert type(excinfo.value) is DatabaseUnavailableError
    _assert_database_cause(excinfo.value)
    assert connection.in_atomic_block is False
    assert ProductRepository().count({"sku": "LOST-1"}) == 0  # nothing written; next call works
    assert not Product.all_objects.filter(sku="LOST-1").exists()


# --- an exhausted pool -------------------------------------------------------------------

TINY_POOL_ALIAS = "tiny_pool"


@pytest.fixture
def tiny_pool() -> Iterator[str]:
    """Add a connection (to the test database) whose pool holds one connection and gives
    up waiting after 0.3 s; remove it afterwards.

    The connection is registered in `connections` but not in its settings, so Django's
    test case treats it as dynamically created (allowed) and flushes only "default".
    """
    settings_dict = copy.deepcopy(connections["default"].settings_dict)
    settings_dict["OPTIONS"]["pool"] = {"min_size": 1, "max_size": 1, "timeout": 0.3}
    settings_dict["CONN_MAX_AGE"] = 0
    wrapper = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, TINY_POOL_ALIAS)
    connections[TINY_POOL_ALIAS] = wrapper
    try:
        yield TINY_POOL_ALIAS
    finally:
        wrapper.close()
        wrapper.close_pool()
        del connections[TINY_POOL_ALIAS]


@pytest.mark.django_db(transaction=True)
def test_exhausted_pool_raises_database_unavailable_from_method_and_atomic(tiny_pool):
    SystemConfigFactory.create(key="pooled", value=1)
    pool = cast(Any, connections[tiny_pool]).pool
    pool.open(wait=True)
    held = pool.getconn()  # the pool's only connection
    try:
        with pytest.raises(RepositoryError) as method_error:
            SystemConfigRepository(using=tiny_pool).count()
        with pytest.raises(RepositoryError) as atomic_error, atomic(using=tiny_pool):
            pytest.fail("the block must not start without a connection")  # pragma: no cover
    finally:
        pool.putconn(held)
    for error in (method_error.value, atomic_error.value):
        assert type(error) is DatabaseUnavailableError
        _assert_database_cause(error)
    assert connections[tiny_pool].in_atomic_block is False
    # Once a connection is free again, the same alias works.
    assert SystemConfigRepository(using=tiny_pool).count({"key": "pooled"}) == 1
