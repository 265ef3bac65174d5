"""Every public repository method surfaces database failures as typed RepositoryErrors.

The methods are discovered, not listed (tests/repositories/repository_calls.py): every
BaseRepository subclass of the `repositories` package and every public method it has
(inherited ones included). Each has an entry in CALLS that builds valid arguments from
fresh rows; the tests then break the connection under it (tests/connection_faults.py:
its server process terminated from a second connection, or behind PgBouncer between
transactions its socket cut) and check that the method raises DatabaseUnavailableError and that
the next call works. Other typed paths: a
read-only session, a real serialization failure, a foreign-key failure inside the
caller's transaction, a lost COMMIT and an exhausted connection pool.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from functools import partial
from typing import Any, cast

import psycopg
import pytest
from django.core.cache import cache
from django.db import connection, connections
from django.db.utils import load_backend

from domain.models import OrderStatusHistory, Product, SystemConfig
from repositories import ProductRepository
from repositories.audit_log import ReadOnlyRepositoryError
from repositories.configuration import SystemConfigRepository
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
from tests.connection_faults import break_connection
from tests.factories import (
    CategoryFactory,
    OrderFactory,
    SystemConfigFactory,
)
from tests.repositories.repository_calls import (
    CALLS,
    Call,
    Key,
    enumerated_methods,
    repository_classes,
)

THREAD_TIMEOUT = 30


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
    enumerated = enumerated_methods()
    assert len(enumerated) > 100  # discovery found the repositories at all
    assert set(CALLS) == enumerated, {
        "missing": sorted(enumerated - set(CALLS)),
        "stale": sorted(set(CALLS) - enumerated),
    }
    assert set(NO_QUERY) <= enumerated
    assert set(IN_CALLERS_TRANSACTION) == set(repository_classes())
    assert set(IN_CALLERS_TRANSACTION.items()) <= set(DATABASE_CALLS)


def test_every_public_repository_method_is_wrapped_in_error_translation():
    classes = repository_classes()
    unwrapped = [
        key
        for key in sorted(enumerated_methods())
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
    break_connection(connection)
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
        break_connection(connection)
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
        break_connection(connection)
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
