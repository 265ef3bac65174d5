"""SessionRepository: tokens, validation, revocation, cleanup and monitoring."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from domain.models import AuditLog, UserSession
from repositories.core.instrumentation import count_queries
from repositories.errors import InvalidQueryError, NotFoundError, ValidationError
from repositories.sessions import SessionRepository, SuspiciousUser, hash_token
from tests.factories import UserFactory, UserSessionFactory

pytestmark = pytest.mark.django_db


def expired_session(**kwargs):
    now = timezone.now()
    return UserSessionFactory.create(
        created_at=now - timedelta(days=2), expires_at=now - timedelta(days=1), **kwargs
    )


def set_last_seen(session, ago: timedelta) -> None:
    UserSession.objects.filter(pk=session.pk).update(last_seen_at=timezone.now() - ago)


# -- create_session ------------------------------------------------------------------


def test_create_session_returns_token_whose_sha256_alone_is_stored():
    user = UserFactory.create()
    session, token = SessionRepository().create_session(
        user.pk, ip_address="203.0.113.5", user_agent="Firefox"
    )
    stored = UserSession.objects.get(pk=session.pk)
    assert len(token) >= 43  # 32 bytes of urlsafe base64: 256 bits
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {stored.token_hash, stored.user_agent, str(stored.ip_address)}
    assert stored.ip_address == "203.0.113.5"
    assert stored.user_agent == "Firefox"
    assert stored.revoked_at is None
    assert session.user == user


def test_create_session_issues_a_different_token_each_time():
    user = UserFactory.create()
    tokens = {SessionRepository().create_session(user.pk)[1] for _ in range(5)}
    assert len(tokens) == 5


def test_create_session_audit_row_holds_neither_token_nor_hash():
    user = UserFactory.create()
    session, token = SessionRepository().create_session(user.pk)
    rows = list(AuditLog.objects.filter(entity_type="usersession", entity_id=str(session.pk)))
    assert [row.action for row in rows] == ["created"]
    text = json.dumps(rows[0].changes)
    assert token not in text
    assert session.token_hash not in text


def test_create_session_expires_after_the_configured_ttl_by_default():
    user = UserFactory.create()
    with override_settings(REPOSITORIES={"SESSION_TTL_SECONDS": 3600}):
        session, _ = SessionRepository().create_session(user.pk)
    assert session.expires_at - session.created_at == timedelta(hours=1)


def test_create_session_uses_the_given_ttl():
    user = UserFactory.create()
    session, _ = SessionRepository().create_session(user.pk, ttl=timedelta(minutes=5))
    assert session.expires_at - session.created_at == timedelta(minutes=5)


@pytest.mark.parametrize("ttl", [timedelta(0), timedelta(seconds=-1), 3600, "1h"])
def test_create_session_raises_validation_error_when_ttl_is_not_a_positive_timedelta(ttl):
    user = UserFactory.create()
    with pytest.raises(ValidationError) as info:
        SessionRepository().create_session(user.pk, ttl=ttl)
    assert "ttl" in info.value.errors


@pytest.mark.parametrize("address", ["999.1.1.1", "not-an-ip", 42])
def test_create_session_raises_validation_error_when_ip_is_invalid(address):
    user = UserFactory.create()
    with pytest.raises(ValidationError) as info:
        SessionRepository().create_session(user.pk, ip_address=address)
    assert "ip_address" in info.value.errors


def test_create_session_keeps_the_start_of_a_huge_user_agent():
    user = UserFactory.create()
    session, _ = SessionRepository().create_session(user.pk, user_agent="A" * 5000)
    assert session.user_agent == "A" * 1024


def test_create_session_raises_validation_error_when_user_agent_has_nul():
    user = UserFactory.create()
    with pytest.raises(ValidationError) as info:
        SessionRepository().create_session(user.pk, user_agent="bad\x00agent")
    assert "user_agent" in info.value.errors


def test_create_session_accepts_ipv6_and_no_address():
    user = UserFactory.create()
    v6, _ = SessionRepository().create_session(user.pk, ip_address="2001:db8::1")
    none, _ = SessionRepository().create_session(user.pk, ip_address="")
    assert v6.ip_address == "2001:db8::1"
    assert none.ip_address is None


def test_create_session_raises_validation_error_when_user_agent_is_not_text():
    user = UserFactory.create()
    with pytest.raises(ValidationError):
        SessionRepository().create_session(user.pk, user_agent=["x"])  # type: ignore[arg-type]


@pytest.mark.parametrize("user_id", [uuid.uuid4(), "not-a-uuid", 17, None])
def test_create_session_raises_not_found_when_user_is_unknown_or_malformed(user_id):
    with pytest.raises(NotFoundError):
        SessionRepository().create_session(user_id)
    assert UserSession.objects.count() == 0


def test_create_session_raises_not_found_when_user_is_deleted():
    user = UserFactory.create(deleted=True)
    with pytest.raises(NotFoundError):
        SessionRepository().create_session(user.pk)


def test_create_session_raises_validation_error_when_user_is_inactive():
    user = UserFactory.create(is_active=False)
    with pytest.raises(ValidationError) as info:
        SessionRepository().create_session(str(user.pk))
    assert "inactive" in str(info.value)
    assert UserSession.objects.count() == 0


# -- validate --------------------------------------------------------------------------


def test_validate_returns_session_with_user_in_one_query_when_recently_seen(
    django_assert_num_queries,
):
    user = UserFactory.create()
    session, token = SessionRepository().create_session(user.pk)
    set_last_seen(session, timedelta(seconds=10))
    with django_assert_num_queries(1):
        found = SessionRepository().validate(token)
        assert found is not None
        assert found.user.email == user.email
    assert found.pk == session.pk


def test_validate_touches_last_seen_when_never_seen():
    user = UserFactory.create()
    session, token = SessionRepository().create_session(user.pk)
    with count_queries() as counted:
        found = SessionRepository().validate(token)
    assert counted.count == 2  # the lookup, then the conditional UPDATE
    assert found is not None
    assert found.last_seen_at is not None
    assert UserSession.objects.get(pk=session.pk).last_seen_at == found.last_seen_at


def test_validate_touches_last_seen_at_most_once_a_minute():
    user = UserFactory.create()
    session, token = SessionRepository().create_session(user.pk)
    set_last_seen(session, timedelta(seconds=30))
    before = UserSession.objects.get(pk=session.pk).last_seen_at
    SessionRepository().validate(token)
    assert UserSession.objects.get(pk=session.pk).last_seen_at == before
    set_last_seen(session, timedelta(minutes=2))
    stale = UserSession.objects.get(pk=session.pk).last_seen_at
    found = SessionRepository().validate(token)
    fresh = UserSession.objects.get(pk=session.pk).last_seen_at
    assert found is not None
    assert fresh is not None
    assert stale is not None
    assert fresh > stale
    assert found.last_seen_at == fresh


def test_validate_update_is_conditional_in_the_database(monkeypatch):
    # Even when the Python-side check thinks a touch is due (here forced), the UPDATE's
    # own condition keeps writes to one a minute, e.g. for concurrent requests.
    user = UserFactory.create()
    session, token = SessionRepository().create_session(user.pk)
    set_last_seen(session, timedelta(seconds=20))
    before = UserSession.objects.get(pk=session.pk).last_seen_at
    monkeypatch.setattr("repositories.sessions.TOUCH_INTERVAL", timedelta(0))
    with count_queries() as counted:
        found = SessionRepository().validate(token)
    assert counted.count == 2
    assert found is not None
    assert found.last_seen_at == before
    assert UserSession.objects.get(pk=session.pk).last_seen_at == before


def test_validate_returns_none_when_expired():
    user = UserFactory.create()
    session, token = SessionRepository().create_session(user.pk)
    UserSession.objects.filter(pk=session.pk).update(
        created_at=timezone.now() - timedelta(days=2), expires_at=timezone.now() - timedelta(1)
    )
    assert SessionRepository().validate(token) is None


def test_validate_returns_none_when_revoked():
    user = UserFactory.create()
    session, token = SessionRepository().create_session(user.pk)
    SessionRepository().revoke(session.pk, reason="logout")
    assert SessionRepository().validate(token) is None


def test_validate_returns_none_when_user_is_deleted_or_inactive():
    deleted, inactive = UserFactory.create(), UserFactory.create()
    _, deleted_token = SessionRepository().create_session(deleted.pk)
    _, inactive_token = SessionRepository().create_session(inactive.pk)
    type(deleted).all_objects.filter(pk=deleted.pk).update(deleted_at=timezone.now())
    type(inactive).all_objects.filter(pk=inactive.pk).update(is_active=False)
    assert SessionRepository().validate(deleted_token) is None
    assert SessionRepository().validate(inactive_token) is None


@pytest.mark.parametrize("token", ["", None, 123, b"bytes", ["x"], "x" * 10_000])
def test_validate_returns_none_without_querying_when_token_is_malformed(
    token, django_assert_num_queries
):
    with django_assert_num_queries(0):
        assert SessionRepository().validate(token) is None


def test_validate_returns_none_when_token_is_unknown():
    UserSessionFactory.create()
    assert SessionRepository().validate("unknown-token") is None


def test_validate_does_not_accept_the_stored_hash_as_a_token():
    user = UserFactory.create()
    session, _ = SessionRepository().create_session(user.pk)
    assert SessionRepository().validate(session.token_hash) is None


# -- revoke ----------------------------------------------------------------------------


def test_revoke_marks_session_revoked_and_audits_it():
    session = UserSessionFactory.create()
    revoked = SessionRepository().revoke(session.pk, reason="logout")
    assert revoked.revoked_at is not None
    assert revoked.revoked_reason == "logout"
    rows = AuditLog.objects.filter(entity_id=str(session.pk), action="revoked")
    assert rows.count() == 1
    assert rows.get().changes["revoked_reason"] == {"old": "", "new": "logout"}


def test_revoke_keeps_first_revocation_when_revoked_twice():
    session = UserSessionFactory.create()
    first = SessionRepository().revoke(session.pk, reason="logout")
    second = SessionRepository().revoke(session.pk, reason="other")
    assert second.revoked_at == first.revoked_at
    assert second.revoked_reason == "logout"
    assert AuditLog.objects.filter(entity_id=str(session.pk), action="revoked").count() == 1


@pytest.mark.parametrize("session_id", [uuid.uuid4(), "zzz", 5, None])
def test_revoke_raises_not_found_when_session_is_unknown_or_malformed(session_id):
    with pytest.raises(NotFoundError):
        SessionRepository().revoke(session_id, reason="logout")


@pytest.mark.parametrize("reason", ["", "   ", None, 3, "x" * 201, "a\x00b"])
def test_revoke_raises_validation_error_when_reason_is_invalid(reason):
    session = UserSessionFactory.create()
    with pytest.raises(ValidationError) as info:
        SessionRepository().revoke(session.pk, reason=reason)
    assert "reason" in info.value.errors


# -- revoke_all ------------------------------------------------------------------------


def test_revoke_all_revokes_live_sessions_of_that_user_only():
    user, other = UserFactory.create(), UserFactory.create()
    live = UserSessionFactory.create_batch(3, user=user)
    expired_session(user=user)
    already = UserSessionFactory.create(user=user, revoked_at=timezone.now(), revoked_reason="old")
    others = UserSessionFactory.create(user=other)

    assert SessionRepository().revoke_all(user.pk) == 3

    for session in live:
        session.refresh_from_db()
        assert session.revoked_at is not None
        assert session.revoked_reason == "revoked"
    already.refresh_from_db()
    assert already.revoked_reason == "old"
    others.refresh_from_db()
    assert others.revoked_at is None


def test_revoke_all_keeps_the_excepted_session():
    user = UserFactory.create()
    keep, drop = UserSessionFactory.create(user=user), UserSessionFactory.create(user=user)
    assert SessionRepository().revoke_all(user.pk, except_id=keep.pk, reason="logout_others") == 1
    keep.refresh_from_db()
    drop.refresh_from_db()
    assert keep.revoked_at is None
    assert drop.revoked_reason == "logout_others"


@pytest.mark.parametrize("sessions", [2, 6])
def test_revoke_all_uses_one_update_and_one_audit_insert_whatever_the_count(sessions):
    user = UserFactory.create()
    UserSessionFactory.create_batch(sessions, user=user)
    with count_queries() as counted:
        assert SessionRepository().revoke_all(user.pk) == sessions
    statements = [q["sql"] for q in counted.queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 2
    assert "UPDATE user_sessions" in statements[0]
    assert 'INSERT INTO "audit_logs"' in statements[1]
    assert AuditLog.objects.filter(action="revoked").count() == sessions


@pytest.mark.parametrize("user_id", [uuid.uuid4(), "nope", 1])
def test_revoke_all_returns_zero_when_user_is_unknown_or_malformed(user_id):
    UserSessionFactory.create()
    assert SessionRepository().revoke_all(user_id) == 0


def test_revoke_all_revokes_everything_when_except_id_is_malformed():
    user = UserFactory.create()
    UserSessionFactory.create_batch(2, user=user)
    assert SessionRepository().revoke_all(user.pk, except_id="garbage") == 2


# -- active_for_user -------------------------------------------------------------------


def test_active_for_user_lists_valid_sessions_newest_first():
    user = UserFactory.create()
    now = timezone.now()
    older = UserSessionFactory.create(user=user, created_at=now - timedelta(hours=2))
    newer = UserSessionFactory.create(user=user, created_at=now - timedelta(hours=1))
    expired_session(user=user)
    UserSessionFactory.create(user=user, revoked_at=now)
    UserSessionFactory.create()  # someone else's
    assert [s.pk for s in SessionRepository().active_for_user(user.pk)] == [newer.pk, older.pk]


@pytest.mark.parametrize("sessions", [3, 7])
def test_active_for_user_loads_users_in_one_query(sessions, django_assert_num_queries):
    user = UserFactory.create()
    UserSessionFactory.create_batch(sessions, user=user)
    with django_assert_num_queries(1):
        found = SessionRepository().active_for_user(user.pk)
        emails = {s.user.email for s in found}
    assert len(found) == sessions
    assert emails == {user.email}


def test_active_for_user_is_empty_when_user_is_deleted_or_inactive():
    deleted = UserFactory.create(deleted=True)
    inactive = UserFactory.create(is_active=False)
    UserSessionFactory.create(user=deleted)
    UserSessionFactory.create(user=inactive)
    assert SessionRepository().active_for_user(deleted.pk) == []
    assert SessionRepository().active_for_user(inactive.pk) == []


@pytest.mark.parametrize("user_id", [uuid.uuid4(), "bad", 3.5, None])
def test_active_for_user_is_empty_when_user_is_unknown_or_malformed(user_id):
    UserSessionFactory.create()
    assert SessionRepository().active_for_user(user_id) == []


# -- find_many / paginate (inherited) -----------------------------------------------------


@pytest.mark.parametrize("sessions", [3, 8])
def test_find_many_filters_sessions_and_loads_users_in_one_query(
    sessions, django_assert_num_queries
):
    user = UserFactory.create()
    UserSessionFactory.create_batch(sessions, user=user)
    UserSessionFactory.create(user=user, revoked_at=timezone.now())
    UserSessionFactory.create()
    with django_assert_num_queries(1):
        found = SessionRepository().find_many({"user": user.pk, "revoked": False})
        [s.user.email for s in found]
    assert len(found) == sessions


def test_find_many_raises_invalid_query_when_filter_is_unknown_or_invalid():
    with pytest.raises(InvalidQueryError):
        SessionRepository().find_many({"token_hash": "x"})
    with pytest.raises(InvalidQueryError):
        SessionRepository().find_many({"ip_address": "not-an-ip"})
    with pytest.raises(InvalidQueryError):
        SessionRepository().find_many(order_by=["token_hash"])


# -- cleanup_expired -------------------------------------------------------------------


def test_cleanup_expired_deletes_expired_sessions_in_batches():
    for _ in range(5):
        expired_session()
    revoked_expired = expired_session(revoked_at=timezone.now() - timedelta(days=1))
    live = UserSessionFactory.create()
    revoked_live = UserSessionFactory.create(revoked_at=timezone.now())

    with count_queries() as counted:
        assert SessionRepository().cleanup_expired(batch_size=2) == 6

    deletes = [q for q in counted.queries if "DELETE FROM user_sessions" in q["sql"]]
    assert len(deletes) == 4  # 2 + 2 + 2 + a last, empty batch
    remaining = set(UserSession.objects.values_list("pk", flat=True))
    assert remaining == {live.pk, revoked_live.pk}
    assert revoked_expired.pk not in remaining
    assert AuditLog.objects.filter(entity_type="usersession", action="deleted").count() == 6


def test_cleanup_expired_returns_zero_when_nothing_expired():
    UserSessionFactory.create()
    assert SessionRepository().cleanup_expired() == 0
    assert UserSession.objects.count() == 1


def test_cleanup_expired_stops_after_a_short_batch(django_assert_num_queries):
    for _ in range(3):
        expired_session()
    with count_queries() as counted:
        assert SessionRepository().cleanup_expired(batch_size=10) == 3
    assert sum("DELETE FROM user_sessions" in q["sql"] for q in counted.queries) == 1


@pytest.mark.parametrize("batch_size", [0, -5, "10", 2.5, True, None])
def test_cleanup_expired_raises_validation_error_when_batch_size_is_invalid(batch_size):
    with pytest.raises(ValidationError) as info:
        SessionRepository().cleanup_expired(batch_size=batch_size)
    assert "batch_size" in info.value.errors


@pytest.mark.django_db(transaction=True)
def test_cleanup_expired_skips_rows_locked_by_another_transaction_without_waiting():
    locked = expired_session()
    free = [expired_session() for _ in range(3)]
    holding = threading.Event()
    release = threading.Event()

    def hold_lock():
        from django.db import transaction

        try:
            with transaction.atomic():
                list(UserSession.objects.select_for_update().filter(pk=locked.pk))
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=hold_lock)
    thread.start()
    try:
        assert holding.wait(10)
        assert SessionRepository().cleanup_expired(batch_size=2) == 3
        remaining = set(UserSession.objects.values_list("pk", flat=True))
        assert remaining == {locked.pk}
        assert not any(s.pk in remaining for s in free)
    finally:
        release.set()
        thread.join(10)
    assert SessionRepository().cleanup_expired() == 1


# -- suspicious_users ------------------------------------------------------------------


def test_suspicious_users_reports_users_with_many_addresses_within_window():
    now = timezone.now()
    hopper, calm, old = UserFactory.create(), UserFactory.create(), UserFactory.create()
    for address in ("198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.3"):
        UserSessionFactory.create(
            user=hopper, ip_address=address, created_at=now - timedelta(minutes=5)
        )
    UserSessionFactory.create(user=hopper, ip_address=None, created_at=now - timedelta(minutes=5))
    UserSessionFactory.create_batch(4, user=calm, ip_address="198.51.100.9")
    for address in ("198.51.100.4", "198.51.100.5", "198.51.100.6"):
        UserSessionFactory.create(user=old, ip_address=address, created_at=now - timedelta(days=3))

    rows = SessionRepository().suspicious_users(window=timedelta(hours=1), min_distinct_ips=3)

    assert rows == [
        SuspiciousUser(user_id=hopper.pk, email=hopper.email, distinct_ips=3, sessions=5)
    ]


def test_suspicious_users_orders_by_most_addresses_first():
    a, b = UserFactory.create(), UserFactory.create()
    for i in range(2):
        UserSessionFactory.create(user=a, ip_address=f"192.0.2.{i}")
    for i in range(4):
        UserSessionFactory.create(user=b, ip_address=f"192.0.2.{i}")
    rows = SessionRepository().suspicious_users(window=timedelta(hours=1), min_distinct_ips=2)
    assert [(r.user_id, r.distinct_ips) for r in rows] == [(b.pk, 4), (a.pk, 2)]


@pytest.mark.parametrize("users", [2, 5])
def test_suspicious_users_runs_one_query(users, django_assert_num_queries):
    for _ in range(users):
        user = UserFactory.create()
        UserSessionFactory.create(user=user, ip_address="192.0.2.1")
        UserSessionFactory.create(user=user, ip_address="192.0.2.2")
    with django_assert_num_queries(1):
        rows = SessionRepository().suspicious_users(window=timedelta(days=1), min_distinct_ips=2)
    assert len(rows) == users


@pytest.mark.parametrize(
    ("window", "minimum", "field"),
    [
        (timedelta(0), 2, "window"),
        (3600, 2, "window"),
        (timedelta(hours=1), 0, "min_distinct_ips"),
        (timedelta(hours=1), "2", "min_distinct_ips"),
        (timedelta(hours=1), True, "min_distinct_ips"),
    ],
)
def test_suspicious_users_raises_validation_error_when_arguments_are_invalid(
    window, minimum, field
):
    with pytest.raises(ValidationError) as info:
        SessionRepository().suspicious_users(window=window, min_distinct_ips=minimum)
    assert field in info.value.errors


def test_hash_token_is_sha256_hex():
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest()


def test_create_and_create_many_are_refused_in_favour_of_create_session():
    user = UserFactory.create()
    with pytest.raises(ValidationError, match="create_session"):
        SessionRepository().create({"user_id": user.pk, "token_hash": "0" * 64})
    with pytest.raises(ValidationError, match="create_session"):
        SessionRepository().create_many([{"user_id": user.pk}])
    assert not UserSession.objects.exists()


def test_update_cannot_change_the_owner_or_the_token_hash():
    session = UserSessionFactory.create()
    with pytest.raises(ValidationError) as info:
        SessionRepository().update(
            session.pk, {"token_hash": "0" * 64, "user": UserFactory.create()}
        )
    assert set(info.value.errors) == {"token_hash", "user"}
    assert SessionRepository().update(session.pk, {"user_agent": "curl"}).user_agent == "curl"


# -- index use -------------------------------------------------------------------------


def plan_of(run, marker: str) -> str:
    """EXPLAIN the first statement containing `marker` that `run` sends (no seq scans)."""
    with CaptureQueriesContext(connection) as captured:
        run()
    sql = next(q["sql"] for q in captured.captured_queries if marker in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


def index_conditions(plan: str) -> str:
    return "\n".join(line for line in plan.splitlines() if "Index Cond" in line)


def test_session_queries_are_answered_from_indexes():
    bulk, user = UserFactory.create(), UserFactory.create()
    with connection.cursor() as cursor:
        # Enough rows, with statistics, for the planner to tell the indexes apart.
        cursor.execute(
            "INSERT INTO user_sessions (user_id, token_hash, user_agent, revoked_reason, "
            "created_at, updated_at, expires_at) "
            "SELECT %s, md5(g::text) || md5((-g)::text), '', '', "
            "now() - (g %% 20) * interval '1 day' - interval '1 hour', now(), "
            "now() - (g %% 20) * interval '1 day' + interval '13 days' "
            "FROM generate_series(1, 3000) AS g",
            [bulk.pk],
        )
        cursor.execute("ANALYZE user_sessions")
        cursor.execute("ANALYZE users")
    UserSessionFactory.create_batch(3, user=user)
    expired_session(user=user)
    repo = SessionRepository()
    validate = plan_of(lambda: repo.validate("t"), "SELECT")
    active = plan_of(lambda: repo.active_for_user(user.pk), "SELECT")
    cleanup = plan_of(repo.cleanup_expired, "DELETE FROM user_sessions")
    suspicious = plan_of(
        lambda: repo.suspicious_users(window=timedelta(hours=1), min_distinct_ips=2), "SELECT"
    )
    assert "token_hash" in index_conditions(validate), validate
    assert "user_id" in index_conditions(active), active
    assert "expires_at" in index_conditions(cleanup), cleanup
    assert "created_at" in index_conditions(suspicious), suspicious


@pytest.mark.django_db(transaction=True)
def test_validate_writes_last_seen_once_when_many_requests_race():
    user = UserFactory.create()
    session, token = SessionRepository().create_session(user.pk)
    set_last_seen(session, timedelta(minutes=5))
    stale = UserSession.objects.get(pk=session.pk).last_seen_at
    assert stale is not None
    barrier = threading.Barrier(4)
    seen: list[object] = []

    def request():
        try:
            barrier.wait(10)
            found = SessionRepository().validate(token)
            seen.append(found.last_seen_at if found is not None else None)
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    stored = UserSession.objects.get(pk=session.pk).last_seen_at
    assert len(seen) == 4
    assert None not in seen
    written = {value for value in seen if value != stale}
    assert written == {stored}  # one UPDATE won; the others matched no row
