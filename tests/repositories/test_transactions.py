"""atomic() and transactional(): savepoints, isolation, timeouts, retries on real conflicts."""

from __future__ import annotations

import copy
import datetime as dt
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import DatabaseError, IntegrityError, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import load_backend

from domain.models import Product, SystemConfig
from repositories.core import transactions
from repositories.core.error_mapping import sqlstate_of
from repositories.core.transactions import (
    atomic,
    backoff_seconds,
    check_deferred_constraints,
    on_commit_or_unknown,
    transactional,
)
from repositories.errors import (
    ConflictError,
    DatabaseUnavailableError,
    QueryTimeoutError,
    ReadOnlyDatabaseError,
    TransactionConflictError,
    TransactionUsageError,
    ValidationError,
)
from tests.connection_faults import break_connection
from tests.factories import ProductFactory, SystemConfigFactory

BARRIER_TIMEOUT = 20


def _setting(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s)", [name])
        return str(cursor.fetchone()[0])


def _setting_on(conn: BaseDatabaseWrapper, name: str) -> str:
    with conn.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s)", [name])
        return str(cursor.fetchone()[0])


@pytest.fixture
def other_alias(transactional_db: None) -> Iterator[str]:
    """Return a second alias to the test database, with a connection of its own (no pool)."""
    alias = f"other_{uuid.uuid4().hex[:8]}"
    settings_dict = copy.deepcopy(connections["default"].settings_dict)
    settings_dict["OPTIONS"].pop("pool", None)
    connections[alias] = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, alias)
    yield alias
    connections[alias].close()
    del connections[alias]


def _cause_state(exc: BaseException) -> str | None:
    return sqlstate_of(exc.__cause__) if exc.__cause__ is not None else None


def _raise_serialization_failure() -> None:
    """Make PostgreSQL itself raise SQLSTATE 40001 (a real database error, not a fake)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DO $$ BEGIN RAISE EXCEPTION 'forced conflict' "
            "USING ERRCODE = 'serialization_failure'; END $$"
        )


def _in_thread(target: Callable[[], None], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)
        finally:
            connections["default"].close()

    return threading.Thread(target=run)


def _run_threads(*targets: Callable[[], None]) -> list[BaseException]:
    errors: list[BaseException] = []
    threads = [_in_thread(t, errors) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


@pytest.fixture
def recorded_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the backoff pauses and really wait them out (threads racing need them)."""
    pauses: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(transactions.time, "sleep", sleep)
    return pauses


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the backoff pauses instead of waiting them out."""
    pauses: list[float] = []
    monkeypatch.setattr(transactions.time, "sleep", pauses.append)
    return pauses


# --- atomic: savepoints ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_atomic_inner_failure_rolls_back_only_the_inner_work():
    with atomic():
        SystemConfigFactory.create(key="outer")
        with pytest.raises(RuntimeError), atomic():
            SystemConfigFactory.create(key="inner")
            raise RuntimeError
        SystemConfigFactory.create(key="after")
    assert sorted(SystemConfig.objects.values_list("key", flat=True)) == ["after", "outer"]


@pytest.mark.django_db(transaction=True)
def test_atomic_outer_failure_rolls_back_everything():
    with pytest.raises(RuntimeError), atomic():
        SystemConfigFactory.create(key="outer")
        with atomic():
            SystemConfigFactory.create(key="inner")
        raise RuntimeError
    assert not SystemConfig.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_atomic_works_as_a_decorator_with_and_without_arguments():
    @atomic
    def plain() -> bool:
        return connection.in_atomic_block

    @atomic(isolation="repeatable read")
    def configured() -> str:
        return _setting("transaction_isolation")

    assert plain() is True
    assert configured() == "repeatable read"
    assert connection.in_atomic_block is False


@pytest.mark.django_db(transaction=True)
def test_atomic_decorator_with_timeouts_sets_them_inside_the_function():
    @atomic(statement_timeout=dt.timedelta(milliseconds=1500), lock_timeout=750)
    def configured() -> tuple[str, str]:
        return _setting("statement_timeout"), _setting("lock_timeout")

    assert configured() == ("1500ms", "750ms")
    assert configured() == ("1500ms", "750ms")  # every call, not only the first
    assert _setting("statement_timeout") == "0"


@pytest.mark.django_db(transaction=True)
def test_bare_atomic_decorator_runs_read_write():
    @atomic
    def write() -> str:
        SystemConfigFactory.create(key="bare-decorated")
        return _setting("transaction_read_only")

    assert write() == "off"
    assert SystemConfig.objects.filter(key="bare-decorated").exists()


@pytest.mark.django_db(transaction=True)
def test_atomic_same_block_object_can_be_entered_inside_itself():
    block = atomic()
    with block:
        SystemConfigFactory.create(key="one")
        with pytest.raises(RuntimeError), block:
            SystemConfigFactory.create(key="two")
            raise RuntimeError
    assert list(SystemConfig.objects.values_list("key", flat=True)) == ["one"]


@pytest.mark.django_db(transaction=True)
def test_atomic_decorated_function_runs_in_parallel_threads():
    barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT)

    @atomic(statement_timeout=5000)
    def work(key: str) -> None:
        SystemConfigFactory.create(key=key)
        barrier.wait()

    errors = _run_threads(lambda: work("t1"), lambda: work("t2"))
    assert errors == []
    assert SystemConfig.objects.count() == 2


# --- atomic: isolation and read-only ------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("read committed", "read committed"),
        ("repeatable read", "repeatable read"),
        ("serializable", "serializable"),
        ("SERIALIZABLE", "serializable"),
    ],
)
def test_atomic_sets_the_isolation_level_of_the_outermost_block(level, expected):
    with atomic(isolation=level):
        assert _setting("transaction_isolation") == expected
    assert _setting("transaction_isolation") == "read committed"


@pytest.mark.django_db(transaction=True)
def test_atomic_isolation_is_the_first_statement_of_the_transaction(django_assert_num_queries):
    connection.ensure_connection()
    with django_assert_num_queries(4) as captured, atomic(isolation="serializable"):
        SystemConfig.objects.exists()
    assert [q["sql"] for q in captured.captured_queries] == [
        "BEGIN",  # logged by Django, sent by psycopg with the next statement
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        'SELECT 1 AS "a" FROM "system_config" LIMIT 1',
        "COMMIT",
    ]


@pytest.mark.django_db(transaction=True)
def test_atomic_read_only_refuses_writes():
    with atomic(read_only=True, isolation="repeatable read"):
        assert _setting("transaction_read_only") == "on"
        with pytest.raises(ReadOnlyDatabaseError) as raised, atomic():
            SystemConfigFactory.create()
    assert sqlstate_of(raised.value) == "25006"
    assert not SystemConfig.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_atomic_refuses_a_different_isolation_inside_a_running_transaction():
    with atomic(isolation="repeatable read"):
        with (
            pytest.raises(TransactionUsageError) as raised,
            atomic(isolation="serializable"),
        ):
            pass  # pragma: no cover - never entered
        assert str(raised.value) == (
            "isolation 'serializable' requested inside a running 'repeatable read' "
            "transaction; set it on the outermost block"
        )
        with atomic(isolation="repeatable read"):  # the same level is fine
            assert _setting("transaction_isolation") == "repeatable read"


@pytest.mark.django_db(transaction=True)
def test_atomic_refuses_an_isolation_inside_a_plain_django_transaction():
    with transaction.atomic():
        SystemConfig.objects.exists()
        with pytest.raises(TransactionUsageError), atomic(isolation="serializable"):
            pass  # pragma: no cover - never entered


@pytest.mark.django_db(transaction=True)
def test_atomic_refuses_read_only_inside_a_read_write_transaction():
    with (
        atomic(),
        pytest.raises(TransactionUsageError) as raised,
        atomic(read_only=True),
    ):
        pass  # pragma: no cover - never entered
    assert str(raised.value) == (
        "read_only requested inside a running read-write transaction; set it on the outermost block"
    )
    with atomic(read_only=True), atomic(read_only=True):
        assert _setting("transaction_read_only") == "on"


@pytest.mark.django_db
def test_atomic_ignores_isolation_inside_the_test_case_transaction():
    # pytest-django wraps this test in a transaction whose level is already fixed.
    with atomic(isolation="serializable", read_only=True):
        SystemConfigFactory.create(key="written")
    assert SystemConfig.objects.filter(key="written").exists()


@pytest.mark.parametrize("level", ["chaos", "read uncommitted", "", 3])
def test_atomic_rejects_an_unknown_isolation_level(level):
    with pytest.raises(ValueError) as raised:
        atomic(isolation=level)
    assert str(raised.value) == (
        "isolation must be one of 'read committed', 'repeatable read', 'serializable', "
        f"not {level!r}"
    )


@pytest.mark.django_db(transaction=True)
def test_atomic_decorator_with_read_only_keeps_it_on_every_call():
    @atomic(read_only=True)
    def read() -> str:
        return _setting("transaction_read_only")

    assert read() == "on"
    assert read() == "on"


@pytest.mark.django_db(transaction=True)
def test_atomic_nested_isolation_check_on_a_lost_connection_raises_unavailable():
    with pytest.raises(DatabaseUnavailableError), atomic():
        _kill_backend_of(connection)
        with atomic(isolation="read committed"):  # asks the server what is running
            pass  # pragma: no cover - never entered
    with atomic(isolation="read committed"):  # the next block gets a working connection
        assert _setting("transaction_isolation") == "read committed"


@pytest.mark.django_db(transaction=True)
def test_atomic_block_statement_on_a_lost_connection_raises_unavailable():
    with pytest.raises(DatabaseUnavailableError) as raised, atomic():
        _kill_backend_of(connection)
        SystemConfig.objects.count()  # Django's own error, typed as the block ends
    assert raised.value.__cause__ is not None
    assert SystemConfig.objects.count() == 0


# --- atomic: timeouts ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("value", [250, dt.timedelta(milliseconds=250)])
def test_atomic_sets_statement_and_lock_timeouts_for_the_block(value):
    with atomic(statement_timeout=value, lock_timeout=value):
        assert _setting("statement_timeout") == "250ms"
        assert _setting("lock_timeout") == "250ms"
    assert _setting("statement_timeout") == "0"
    assert _setting("lock_timeout") == "0"


@pytest.mark.django_db(transaction=True)
def test_atomic_nested_timeout_restores_the_outer_value_when_the_inner_block_ends():
    with atomic(statement_timeout=dt.timedelta(seconds=5), lock_timeout=3000):
        with atomic(statement_timeout=100):
            assert _setting("statement_timeout") == "100ms"
            assert _setting("lock_timeout") == "3s"
        assert _setting("statement_timeout") == "5s"
        with pytest.raises(RuntimeError), atomic(lock_timeout=10):
            assert _setting("lock_timeout") == "10ms"
            raise RuntimeError
        assert _setting("lock_timeout") == "3s"
        assert _setting("statement_timeout") == "5s"


@pytest.mark.django_db(transaction=True)
def test_atomic_nested_block_setting_both_timeouts_restores_both():
    with atomic(statement_timeout=dt.timedelta(seconds=5), lock_timeout=3000):
        with atomic(statement_timeout=100, lock_timeout=10):
            assert _setting("statement_timeout") == "100ms"
            assert _setting("lock_timeout") == "10ms"
        assert _setting("statement_timeout") == "5s"
        assert _setting("lock_timeout") == "3s"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("zero", [0, dt.timedelta(0)])
def test_atomic_timeout_zero_disables_the_outer_timeout(zero):
    with atomic(statement_timeout=50, lock_timeout=50):
        assert _setting("statement_timeout") == "50ms"
        with atomic(statement_timeout=zero, lock_timeout=zero), connection.cursor() as cursor:
            assert _setting("statement_timeout") == "0"
            assert _setting("lock_timeout") == "0"
            cursor.execute("SELECT pg_sleep(0.2)")  # would time out under 50 ms
        assert _setting("statement_timeout") == "50ms"
        assert _setting("lock_timeout") == "50ms"


@pytest.mark.django_db
def test_atomic_nested_timeout_inside_the_test_transaction_is_restored():
    outer = _setting("statement_timeout")
    with atomic(statement_timeout=1234):
        assert _setting("statement_timeout") == "1234ms"
    assert _setting("statement_timeout") == outer


@pytest.mark.django_db(transaction=True)
def test_atomic_statement_timeout_raises_query_timeout_error():
    with (
        pytest.raises(QueryTimeoutError) as raised,
        atomic(statement_timeout=50),
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT pg_sleep(2)")
    assert raised.value.kind == "statement"
    assert _cause_state(raised.value) == "57014"
    # The connection is usable afterwards, without the timeout.
    assert _setting("statement_timeout") == "0"


@pytest.mark.django_db(transaction=True)
def test_atomic_statement_timeout_in_a_nested_block_keeps_the_outer_transaction():
    with atomic():
        SystemConfigFactory.create(key="kept")
        with (
            pytest.raises(QueryTimeoutError),
            atomic(statement_timeout=50),
            connection.cursor() as cursor,
        ):
            cursor.execute("SELECT pg_sleep(2)")
        SystemConfigFactory.create(key="after")
    assert SystemConfig.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_atomic_lock_timeout_raises_query_timeout_error_when_a_row_is_locked():
    row = SystemConfigFactory.create(key="locked")
    locked = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        with atomic():
            SystemConfig.objects.select_for_update().get(pk=row.pk)
            locked.set()
            release.wait(BARRIER_TIMEOUT)

    errors: list[BaseException] = []
    holder = _in_thread(hold_lock, errors)
    holder.start()
    try:
        assert locked.wait(BARRIER_TIMEOUT)
        started = time.monotonic()
        with pytest.raises(QueryTimeoutError) as raised, atomic(lock_timeout=100):
            SystemConfig.objects.select_for_update().get(pk=row.pk)
        waited = time.monotonic() - started
    finally:
        release.set()
        holder.join()
    assert errors == []
    assert raised.value.kind == "lock"
    assert _cause_state(raised.value) == "55P03"
    assert waited < 5


@pytest.mark.parametrize(
    "value",
    [-1, 1.5, "100", True, 2**31, dt.timedelta(microseconds=1500), dt.timedelta(seconds=-1)],
)
def test_atomic_rejects_invalid_timeouts(value):
    with pytest.raises(ValueError, match=r"^statement_timeout must be a "):
        atomic(statement_timeout=value)
    with pytest.raises(ValueError, match=r"^lock_timeout must be a "):
        atomic(lock_timeout=value)


@pytest.mark.django_db(transaction=True)
def test_atomic_accepts_the_largest_timeout_postgresql_takes():
    largest = 2**31 - 1
    with atomic(statement_timeout=largest, lock_timeout=largest):
        assert _setting("statement_timeout") == f"{largest}ms"
        assert _setting("lock_timeout") == f"{largest}ms"


@pytest.mark.django_db(transaction=True)
def test_atomic_outermost_timeouts_end_with_the_transaction_without_a_restore(
    django_assert_num_queries,
):
    connection.ensure_connection()
    with django_assert_num_queries(4) as captured, atomic(statement_timeout=100):
        SystemConfig.objects.exists()
    sql = [q["sql"] for q in captured.captured_queries]
    assert sql[0] == "BEGIN"
    assert "set_config" in sql[1]
    assert sql[3] == "COMMIT"
    assert _setting("statement_timeout") == "0"


# --- transactional: retries on real conflicts -----------------------------------------------


def _on_call_rows() -> None:
    SystemConfigFactory.create(key="doctor.a", value={"on_call": True})
    SystemConfigFactory.create(key="doctor.b", value={"on_call": True})


def _write_skew_worker(
    me: str, other: str, barrier: threading.Barrier, attempts: list[str], max_attempts: int = 3
) -> Callable[[], None]:
    """Go off call if the other doctor is on call: the classic write skew."""

    @transactional(isolation="serializable", max_attempts=max_attempts)
    def go_off_call() -> None:
        attempts.append(me)
        rows: dict[str, Any] = dict(
            SystemConfig.objects.filter(key__startswith="doctor.").values_list("key", "value")
        )
        if attempts.count(me) == 1:
            barrier.wait()  # both have read before either writes
        if rows[other]["on_call"]:
            SystemConfig.objects.filter(key=me).update(value={"on_call": False})

    return go_off_call


@pytest.mark.django_db(transaction=True)
def test_transactional_retries_a_serializable_write_skew_and_succeeds(recorded_sleep):
    _on_call_rows()
    barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT)
    attempts: list[str] = []
    errors = _run_threads(
        _write_skew_worker("doctor.a", "doctor.b", barrier, attempts, max_attempts=5),
        _write_skew_worker("doctor.b", "doctor.a", barrier, attempts, max_attempts=5),
    )
    assert errors == []
    values: list[Any] = list(SystemConfig.objects.order_by("key").values_list("value", flat=True))
    on_call = [v["on_call"] for v in values]
    assert on_call.count(True) == 1  # the invariant holds: someone stays on call
    # One of the two ran again (a retry that starts before the winner commits may
    # conflict once more, so more than one retry is possible).
    assert len(attempts) >= 3
    assert len(recorded_sleep) == len(attempts) - 2


@pytest.mark.django_db(transaction=True)
def test_transactional_raises_conflict_error_when_attempts_run_out_on_a_real_conflict(
    no_sleep,
):
    _on_call_rows()
    barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT)
    attempts: list[str] = []
    errors = _run_threads(
        _write_skew_worker("doctor.a", "doctor.b", barrier, attempts, max_attempts=1),
        _write_skew_worker("doctor.b", "doctor.a", barrier, attempts, max_attempts=1),
    )
    assert len(errors) >= 1  # the first to commit wins; the other has no attempt left
    assert all(isinstance(e, TransactionConflictError) for e in errors)
    assert all(_cause_state(e) == "40001" for e in errors)
    assert no_sleep == []


@pytest.mark.django_db(transaction=True)
def test_transactional_retries_a_deadlock_and_succeeds(recorded_sleep):
    SystemConfigFactory.create(key="row.a", value=0)
    SystemConfigFactory.create(key="row.b", value=0)
    barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT)
    attempts: list[str] = []

    def worker(first: str, second: str) -> Callable[[], None]:
        @transactional()
        def increment_both() -> None:
            attempts.append(first)
            _increment(first)
            if attempts.count(first) == 1:
                barrier.wait()  # each holds its first row: opposite order → deadlock
            _increment(second)

        return increment_both

    errors = _run_threads(worker("row.a", "row.b"), worker("row.b", "row.a"))
    assert errors == []
    assert dict(SystemConfig.objects.values_list("key", "value")) == {"row.a": 2, "row.b": 2}
    assert len(attempts) >= 3  # the deadlock victim ran again
    assert len(recorded_sleep) == len(attempts) - 2


def _increment(key: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE system_config SET value = to_jsonb(value::text::int + 1) WHERE key = %s",
            [key],
        )


@pytest.mark.django_db(transaction=True)
def test_transactional_gives_up_after_max_attempts_with_the_last_error_as_cause(no_sleep):
    calls: list[int] = []

    @transactional(max_attempts=4)
    def always_conflicts() -> None:
        calls.append(1)
        _raise_serialization_failure()

    with pytest.raises(TransactionConflictError) as raised:
        always_conflicts()
    assert raised.value.attempts == 4
    assert len(calls) == 4
    assert _cause_state(raised.value) == "40001"
    assert isinstance(raised.value.__cause__, DatabaseError)
    assert len(no_sleep) == 3
    assert no_sleep[0] < no_sleep[-1] * 2  # grows (jitter is at most ±50 %)


@pytest.mark.django_db(transaction=True)
def test_transactional_runs_three_attempts_by_default(no_sleep):
    calls: list[int] = []

    @transactional()
    def always_conflicts() -> None:
        calls.append(1)
        _raise_serialization_failure()

    with pytest.raises(TransactionConflictError) as raised:
        always_conflicts()
    assert raised.value.attempts == 3
    assert len(calls) == 3
    assert len(no_sleep) == 2


@pytest.mark.django_db(transaction=True)
def test_transactional_does_not_retry_a_unique_violation(no_sleep):
    SystemConfigFactory.create(key="taken")
    calls: list[int] = []

    @transactional()
    def insert_duplicate() -> None:
        calls.append(1)
        SystemConfig.objects.create(key="taken")

    with pytest.raises(ConflictError) as raised:
        insert_duplicate()
    assert isinstance(raised.value.__cause__, IntegrityError)
    assert calls == [1]
    assert no_sleep == []


@pytest.mark.django_db(transaction=True)
def test_transactional_does_not_retry_a_check_violation():
    calls: list[int] = []

    @transactional()
    def insert_invalid() -> None:
        calls.append(1)
        SystemConfig.objects.create(key="bad key!")

    with pytest.raises(ValidationError) as raised:
        insert_invalid()
    assert sqlstate_of(raised.value) == "23514"
    assert calls == [1]


@pytest.mark.django_db(transaction=True)
def test_transactional_never_retries_inside_an_outer_transaction(no_sleep):
    calls: list[int] = []

    @transactional()
    def conflicts() -> None:
        calls.append(1)
        _raise_serialization_failure()

    with pytest.raises(TransactionConflictError) as raised, atomic():
        conflicts()
    assert sqlstate_of(raised.value) == "40001"  # an outermost `transactional` retries it
    assert raised.value.attempts == 1
    assert calls == [1]
    assert no_sleep == []


@pytest.mark.django_db(transaction=True)
def test_transactional_runs_on_commit_callbacks_once_after_the_final_commit(no_sleep):
    ran: list[tuple[int, bool]] = []
    calls: list[int] = []

    @transactional(max_attempts=3)
    def flaky() -> str:
        calls.append(1)
        attempt = len(calls)
        SystemConfigFactory.create(key=f"attempt.{attempt}")
        transaction.on_commit(lambda: ran.append((attempt, connection.in_atomic_block)))
        if attempt < 3:
            _raise_serialization_failure()
        return "done"

    assert flaky() == "done"
    assert ran == [(3, False)]  # only the successful attempt's callback, after commit
    assert list(SystemConfig.objects.values_list("key", flat=True)) == ["attempt.3"]


@pytest.mark.django_db(transaction=True)
def test_transactional_returns_the_result_and_commits(django_assert_num_queries):
    @transactional(isolation="serializable")
    def create(key: str) -> Any:
        assert _setting("transaction_isolation") == "serializable"
        return SystemConfigFactory.create(key=key)

    created = create("made")
    assert SystemConfig.objects.get(pk=created.pk).key == "made"
    assert create.__name__ == "create"


@pytest.mark.django_db
def test_transactional_inside_the_test_transaction_runs_once_as_a_savepoint():
    @transactional(isolation="serializable")
    def create() -> None:
        SystemConfigFactory.create(key="x")

    create()
    assert SystemConfig.objects.filter(key="x").exists()


@pytest.mark.parametrize("attempts", [0, -1, True, 1.5])
def test_transactional_rejects_invalid_max_attempts(attempts):
    with pytest.raises(ValueError, match="max_attempts"):
        transactional(max_attempts=attempts)


def test_transactional_rejects_an_unknown_isolation():
    with pytest.raises(ValueError, match="isolation"):
        transactional(isolation="snapshot")


def test_backoff_grows_with_jitter_and_is_capped():
    for attempt, ceiling in [(1, 0.02), (2, 0.04), (3, 0.08), (20, 1.0)]:
        pauses = [backoff_seconds(attempt) for _ in range(200)]
        assert all(0.5 * ceiling <= p <= 1.5 * ceiling for p in pauses)
        assert len(set(pauses)) > 1  # jittered


def _kill_backend_of(conn: Any) -> None:
    """Break a connection under whatever it does next (tests/connection_faults.py: its
    server process terminated, or behind PgBouncer between transactions its socket cut)."""
    break_connection(conn)


@pytest.mark.django_db(transaction=True)
def test_atomic_leaves_no_open_block_when_setting_up_the_transaction_fails():
    _kill_backend_of(connection)
    with pytest.raises(DatabaseUnavailableError), atomic(isolation="serializable"):
        pass  # pragma: no cover - never entered
    assert connection.in_atomic_block is False
    with atomic(isolation="serializable"):  # the next block gets a working connection
        assert _setting("transaction_isolation") == "serializable"


@pytest.mark.django_db(transaction=True)
def test_atomic_rolls_back_when_restoring_the_outer_timeout_fails():
    with (
        pytest.raises(DatabaseUnavailableError),
        atomic(statement_timeout=5000),
        atomic(statement_timeout=100),
    ):
        SystemConfigFactory.create(key="lost")
        _kill_backend_of(connection)
    assert connection.in_atomic_block is False
    assert not SystemConfig.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_on_commit_or_unknown_runs_when_the_connection_is_lost_at_commit():
    ran: list[str] = []
    with pytest.raises(DatabaseUnavailableError), atomic():
        SystemConfigFactory.create(key="maybe")
        transactions.on_commit_or_unknown(lambda: ran.append("invalidate"))
        transaction.on_commit(lambda: ran.append("plain"))
        _kill_backend_of(connection)
    assert ran == ["invalidate"]  # the outcome is unknown: invalidate anyway
    assert not SystemConfig.objects.filter(key="maybe").exists()  # the next call works


@pytest.mark.django_db(transaction=True)
def test_on_commit_or_unknown_does_not_run_after_a_rollback():
    ran: list[str] = []
    with pytest.raises(RuntimeError), atomic():
        transactions.on_commit_or_unknown(lambda: ran.append("invalidate"))
        raise RuntimeError("the block fails")
    with atomic():
        transactions.on_commit_or_unknown(lambda: ran.append("committed"))
    assert ran == ["committed"]


@pytest.mark.django_db(transaction=True)
def test_on_commit_or_unknown_does_not_run_when_a_savepoint_loses_the_connection():
    ran: list[str] = []
    with pytest.raises(DatabaseUnavailableError), atomic():
        SystemConfigFactory.create(key="outer")
        with atomic():
            on_commit_or_unknown(lambda: ran.append("invalidate"))
            _kill_backend_of(connection)
        # RELEASE SAVEPOINT failed: the transaction cannot have committed.
    assert ran == []
    assert not SystemConfig.objects.exists()


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.django_db(transaction=True)
def test_on_commit_or_unknown_does_not_run_when_a_failed_block_cannot_reconnect(other_alias):
    other = connections[other_alias]
    ran: list[str] = []
    with pytest.raises(DatabaseUnavailableError), atomic(other_alias):
        on_commit_or_unknown(lambda: ran.append("invalidate"), using=other_alias)
        _kill_backend_of(other)
        # The rollback fails and Django's reconnect after it too: the server is "gone".
        other.settings_dict.update(HOST="127.0.0.1", PORT=str(_unused_port()))
        raise RuntimeError("the block fails")
    assert ran == []  # the block failed: nothing can have committed


# --- another database alias ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_atomic_on_another_alias_opens_and_configures_that_connection(other_alias):
    other = connections[other_alias]
    with atomic(other_alias, isolation="repeatable read", statement_timeout=1234):
        assert other.in_atomic_block and not connection.in_atomic_block
        assert _setting_on(other, "transaction_isolation") == "repeatable read"
        assert _setting_on(other, "statement_timeout") == "1234ms"
        assert _setting("statement_timeout") == "0"
    assert not other.in_atomic_block

    @atomic(other_alias, lock_timeout=250)
    def decorated() -> tuple[bool, str]:
        return connection.in_atomic_block, _setting_on(other, "lock_timeout")

    assert decorated() == (False, "250ms")


@pytest.mark.django_db(transaction=True)
def test_on_commit_or_unknown_waits_for_the_commit_of_its_own_alias(other_alias):
    ran: list[str] = []
    with atomic(other_alias):
        on_commit_or_unknown(lambda: ran.append("invalidate"), using=other_alias)
        assert ran == []
    assert ran == ["invalidate"]


@pytest.mark.django_db(transaction=True)
def test_atomic_discards_only_the_broken_connection_of_its_own_alias(other_alias):
    other = connections[other_alias]
    connection.ensure_connection()
    default_connection = connection.connection
    with pytest.raises(DatabaseUnavailableError), atomic(other_alias):
        _kill_backend_of(other)
        with other.cursor() as cursor:
            cursor.execute("SELECT 1")
    assert connection.connection is default_connection
    assert _setting_on(other, "statement_timeout") == "0"  # reconnects


# --- check_deferred_constraints ------------------------------------------------------------


def _dangle_category_of(product: Any) -> None:
    """Point a product at a missing category: Django's foreign keys are checked at COMMIT."""
    Product.objects.filter(pk=product.pk).update(category_id=uuid.uuid4())


@pytest.mark.django_db(transaction=True)
def test_check_deferred_constraints_fails_inside_a_callers_transaction():
    product = ProductFactory.create()
    reached: list[bool] = []
    # The caller's transaction, then the repository's block inside it.
    with pytest.raises(ValidationError) as raised, atomic(), atomic():
        _dangle_category_of(product)
        check_deferred_constraints()
        reached.append(True)
    assert reached == []  # it failed at the check, not at the caller's COMMIT
    assert sqlstate_of(raised.value) == "23503"


@pytest.mark.django_db(transaction=True)
def test_check_deferred_constraints_sends_nothing_for_an_outermost_block(
    django_assert_num_queries,
):
    with atomic(), django_assert_num_queries(0):
        check_deferred_constraints()  # this block's own COMMIT checks them
    with django_assert_num_queries(0):
        check_deferred_constraints()  # no transaction at all


@pytest.mark.django_db(transaction=True)
def test_check_deferred_constraints_checks_the_connection_of_its_alias(other_alias):
    product = ProductFactory.create()
    reached: list[bool] = []
    with pytest.raises(ValidationError), atomic(), atomic():
        _dangle_category_of(product)
        check_deferred_constraints(using=other_alias)  # no transaction there: nothing to do
        reached.append(True)
    assert reached == [True]  # the violation surfaced at this connection's COMMIT
