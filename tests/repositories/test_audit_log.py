"""AuditLogRepository: read-only queries over the append-only trail."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from domain.models import AuditLog
from repositories.audit_log import AuditLogRepository, ReadOnlyRepositoryError
from repositories.core.audit import audit_context
from repositories.core.error_mapping import sqlstate_of
from repositories.errors import InvalidQueryError, RepositoryError
from repositories.users import UserRepository
from tests.factories import AuditLogFactory, UserFactory

pytestmark = pytest.mark.django_db


def actor_email(row: AuditLog) -> str:
    assert row.actor is not None
    return row.actor.email


def at(minutes_ago: float):
    return timezone.now() - timedelta(minutes=minutes_ago)


# -- for_entity ------------------------------------------------------------------------


def test_for_entity_returns_history_oldest_first_with_id_tiebreak():
    same = at(5)
    second = AuditLogFactory.create(entity_type="product", entity_id="p1", occurred_at=same)
    third = AuditLogFactory.create(entity_type="product", entity_id="p1", occurred_at=same)
    first = AuditLogFactory.create(entity_type="product", entity_id="p1", occurred_at=at(10))
    AuditLogFactory.create(entity_type="product", entity_id="p2")
    AuditLogFactory.create(entity_type="order", entity_id="p1")
    rows = AuditLogRepository().for_entity("product", "p1")
    assert [r.pk for r in rows] == [first.pk, second.pk, third.pk]


def test_for_entity_accepts_uuid_and_int_keys():
    key = uuid.uuid4()
    row = AuditLogFactory.create(entity_type="user", entity_id=str(key))
    numeric = AuditLogFactory.create(entity_type="auditlog", entity_id="42")
    assert AuditLogRepository().for_entity("user", key) == [row]
    assert AuditLogRepository().for_entity("auditlog", 42) == [numeric]


def test_for_entity_shows_writes_made_through_repositories():
    actor = UserFactory.create()
    with audit_context(actor=actor, request_id="req-1"):
        user = UserRepository().create({"email": "trail@example.com"})
        UserRepository().verify_email(user.pk)
    rows = AuditLogRepository().for_entity("user", user.pk)
    assert [r.action for r in rows] == ["created", "updated"]
    assert {r.actor_id for r in rows} == {actor.pk}
    assert {r.request_id for r in rows} == {"req-1"}


@pytest.mark.parametrize("rows", [3, 9])
def test_for_entity_loads_actors_in_one_query(rows, django_assert_num_queries):
    for _ in range(rows):
        AuditLogFactory.create(entity_type="product", entity_id="p", actor=UserFactory.create())
    with django_assert_num_queries(1):
        found = AuditLogRepository().for_entity("product", "p")
        emails = [actor_email(r) for r in found]
    assert len(emails) == rows


@pytest.mark.parametrize(
    ("entity_type", "entity_id"),
    [(None, "1"), (3, "1"), ("", "1"), ("product", None), ("product", ["1"]), ("product", {})],
)
def test_for_entity_raises_invalid_query_when_arguments_have_wrong_types(entity_type, entity_id):
    with pytest.raises(InvalidQueryError):
        AuditLogRepository().for_entity(entity_type, entity_id)


def test_for_entity_returns_empty_list_for_unknown_entity():
    AuditLogFactory.create()
    assert AuditLogRepository().for_entity("product", "nope") == []


# -- by_actor --------------------------------------------------------------------------


def test_by_actor_returns_actions_newest_first():
    actor = UserFactory.create()
    old = AuditLogFactory.create(actor=actor, occurred_at=at(30))
    new = AuditLogFactory.create(actor=actor, occurred_at=at(1))
    AuditLogFactory.create(actor=UserFactory.create())
    AuditLogFactory.create(actor=None)
    assert [r.pk for r in AuditLogRepository().by_actor(actor.pk)] == [new.pk, old.pk]


def test_by_actor_still_lists_actions_of_a_deleted_user():
    actor = UserFactory.create()
    row = AuditLogFactory.create(actor=actor)
    UserRepository().soft_delete(actor.pk)
    assert row in AuditLogRepository().by_actor(str(actor.pk))


@pytest.mark.parametrize("rows", [2, 7])
def test_by_actor_runs_one_query(rows, django_assert_num_queries):
    actor = UserFactory.create()
    AuditLogFactory.create_batch(rows, actor=actor)
    with django_assert_num_queries(1):
        found = AuditLogRepository().by_actor(actor.pk)
        [actor_email(r) for r in found]
    assert len(found) == rows


@pytest.mark.parametrize("user_id", [uuid.uuid4(), "garbage", 7, None])
def test_by_actor_returns_empty_list_for_unknown_or_malformed_ids(user_id):
    AuditLogFactory.create(actor=UserFactory.create())
    assert AuditLogRepository().by_actor(user_id) == []


# -- find_many / paginate_cursor ---------------------------------------------------------


def test_find_many_defaults_to_newest_first():
    rows = [AuditLogFactory.create(occurred_at=at(m)) for m in (30, 10, 20)]
    found = AuditLogRepository().find_many()
    assert [r.pk for r in found] == [rows[1].pk, rows[2].pk, rows[0].pk]


def test_find_many_filters_by_action_entity_actor_and_time_range():
    actor = UserFactory.create()
    hit = AuditLogFactory.create(
        action="updated", entity_type="product", entity_id="p9", actor=actor, occurred_at=at(5)
    )
    AuditLogFactory.create(action="created", entity_type="product", entity_id="p9", actor=actor)
    AuditLogFactory.create(action="updated", entity_type="order", entity_id="p9", actor=actor)
    AuditLogFactory.create(
        action="updated", entity_type="product", entity_id="p9", occurred_at=at(5)
    )
    AuditLogFactory.create(
        action="updated", entity_type="product", entity_id="p9", actor=actor, occurred_at=at(90)
    )
    filters = {
        "action": "updated",
        "entity_type": "product",
        "entity_id": "p9",
        "actor": str(actor.pk),
        "occurred_after": at(60),
        "occurred_before": timezone.now(),
    }
    assert AuditLogRepository().find_many(filters) == [hit]
    assert AuditLogRepository().count(filters) == 1


@pytest.mark.parametrize(
    "filters",
    [
        {"changes": "x"},
        {"actor": "not-a-uuid"},
        {"occurred_after": "last week"},
        {"action": ["a", "b"]},
    ],
)
def test_find_many_raises_invalid_query_when_filters_are_bad(filters):
    with pytest.raises(InvalidQueryError):
        AuditLogRepository().find_many(filters)


def test_find_many_raises_invalid_query_when_sorting_by_other_fields():
    with pytest.raises(InvalidQueryError):
        AuditLogRepository().find_many(order_by=["action"])


@pytest.mark.parametrize("rows", [3, 10])
def test_find_many_loads_actors_in_one_query(rows, django_assert_num_queries):
    for _ in range(rows):
        AuditLogFactory.create(actor=UserFactory.create(), action="created")
    with django_assert_num_queries(1):
        found = AuditLogRepository().find_many({"action": "created"})
        [actor_email(r) for r in found]
    assert len(found) == rows


def test_paginate_cursor_walks_the_trail_newest_first_exactly_once():
    same = at(3)
    rows = [AuditLogFactory.create(entity_type="order", occurred_at=same) for _ in range(3)]
    rows += [AuditLogFactory.create(entity_type="order", occurred_at=at(m)) for m in (1, 2, 4, 5)]
    AuditLogFactory.create(entity_type="product")
    repo = AuditLogRepository()
    seen, after = [], None
    while True:
        page = repo.paginate_cursor({"entity_type": "order"}, after=after, limit=2)
        seen.extend(page.items)
        if not page.has_next:
            break
        after = page.next_cursor
    assert len(seen) == len(rows)
    assert {r.pk for r in seen} == {r.pk for r in rows}
    keys = [(r.occurred_at, r.pk) for r in seen]
    assert keys == sorted(keys, reverse=True)


@pytest.mark.parametrize("rows", [4, 12])
def test_paginate_cursor_runs_one_query_per_page(rows, django_assert_num_queries):
    AuditLogFactory.create_batch(rows, actor=UserFactory.create())
    first = AuditLogRepository().paginate_cursor(limit=3)
    with django_assert_num_queries(1):
        page = AuditLogRepository().paginate_cursor(after=first.next_cursor, limit=3)
        [actor_email(r) for r in page.items]
    assert len(page.items) == min(3, rows - 3)


def test_paginate_cursor_refuses_a_tampered_cursor():
    AuditLogFactory.create_batch(3)
    page = AuditLogRepository().paginate_cursor(limit=1)
    cursor = page.next_cursor
    assert cursor is not None
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    with pytest.raises(InvalidQueryError):
        AuditLogRepository().paginate_cursor(after=tampered, limit=1)


# -- read-only -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "args", "kwargs"),
    [
        ("create", ({"action": "created"},), {}),
        ("create_many", ([{"action": "created"}],), {}),
        ("update", (1, {"action": "x"}), {}),
        ("update_many", ({}, {"action": "x"}), {}),
        ("delete", (1,), {}),
        ("delete_many", ({},), {}),
        ("soft_delete", (1,), {}),
        ("restore", (1,), {}),
    ],
)
def test_write_methods_raise_read_only_error(method, args, kwargs):
    row = AuditLogFactory.create(action="created")
    with pytest.raises(ReadOnlyRepositoryError, match="append-only") as info:
        getattr(AuditLogRepository(), method)(*args, **kwargs)
    assert isinstance(info.value, RepositoryError)
    row.refresh_from_db()
    assert row.action == "created"
    assert AuditLog.objects.count() == 1


@pytest.mark.parametrize("statement", ["update", "delete"])
def test_database_refuses_rewriting_the_trail_even_around_the_repository(statement):
    row = AuditLogFactory.create(action="created")
    queryset = AuditLog.objects.filter(pk=row.pk)
    with pytest.raises(DatabaseError) as info, transaction.atomic():
        if statement == "update":
            queryset.update(action="tampered")
        else:
            queryset.delete()
    assert sqlstate_of(info.value) == "42501"
    row.refresh_from_db()
    assert row.action == "created"


def plan_of(run) -> str:
    """EXPLAIN the first SELECT `run` sends, with sequential scans discouraged."""
    with CaptureQueriesContext(connection) as captured:
        run()
    sql = next(q["sql"] for q in captured.captured_queries if "SELECT" in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


def index_conditions(plan: str) -> str:
    return "\n".join(line for line in plan.splitlines() if "Index Cond" in line)


def test_trail_queries_are_answered_from_indexes():
    with connection.cursor() as cursor:
        # Enough rows, with statistics, for the planner to tell the indexes apart.
        cursor.execute(
            "INSERT INTO audit_logs (occurred_at, created_at, actor_repr, action, entity_type, "
            "entity_id, changes, request_id) "
            "SELECT now() - g * interval '1 minute', now(), '', "
            "(ARRAY['updated', 'deleted', 'restored'])[g % 3 + 1], 'order', g::text, "
            "'{}'::jsonb, '' FROM generate_series(1, 3000) AS g"
        )
        cursor.execute("ANALYZE audit_logs")
    actor = UserFactory.create()
    AuditLogFactory.create_batch(3, actor=actor, entity_type="product", entity_id="p")
    repo = AuditLogRepository()
    for_entity = plan_of(lambda: repo.for_entity("product", "p"))
    by_actor = plan_of(lambda: repo.by_actor(actor.pk))
    by_action = plan_of(lambda: repo.find_many({"action": "created"}))
    newest = plan_of(lambda: repo.paginate_cursor(limit=2))
    assert "entity_type" in index_conditions(for_entity), for_entity
    assert "actor_id" in index_conditions(by_actor), by_actor
    assert "action" in index_conditions(by_action), by_action
    assert "audit_occurred_idx" in newest, newest
