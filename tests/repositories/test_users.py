"""UserRepository: email lookups, active-user listings, passwords, soft delete."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.hashers import check_password
from django.db import connection
from django.utils import timezone

from domain.models import AuditLog, User, UserSession
from repositories.errors import (
    ConflictError,
    InvalidQueryError,
    NotFoundError,
    RepositoryError,
    ValidationError,
)
from repositories.sessions import SessionRepository
from repositories.users import UserRepository
from tests.factories import UserFactory, UserSessionFactory

pytestmark = pytest.mark.django_db

STRONG = "violet-otter-lantern-42"


def audit_text(user_id) -> str:
    return json.dumps(
        list(AuditLog.objects.filter(entity_id=str(user_id)).values_list("changes", flat=True))
    )


# -- find_by_email ---------------------------------------------------------------------


def test_find_by_email_matches_case_insensitively_and_strips():
    user = UserFactory.create(email="Ada.Lovelace@Example.com")
    assert UserRepository().find_by_email("ada.lovelace@example.COM") == user
    assert UserRepository().find_by_email("  ADA.LOVELACE@EXAMPLE.COM ") == user


def test_find_by_email_runs_one_query(django_assert_num_queries):
    UserFactory.create(email="one@example.com")
    with django_assert_num_queries(1):
        assert UserRepository().find_by_email("ONE@example.com") is not None


def test_find_by_email_ignores_deleted_users():
    UserFactory.create(email="gone@example.com", deleted=True)
    assert UserRepository().find_by_email("gone@example.com") is None


def test_find_by_email_returns_the_live_user_when_a_deleted_one_shared_the_email():
    UserFactory.create(email="reuse@example.com", deleted=True)
    live = UserFactory.create(email="Reuse@example.com")
    assert UserRepository().find_by_email("reuse@example.com") == live


@pytest.mark.parametrize("email", ["", "   ", "nobody@example.com"])
def test_find_by_email_returns_none_when_no_live_user_matches(email):
    UserFactory.create()
    assert UserRepository().find_by_email(email) is None


@pytest.mark.parametrize("email", [None, 42, ["a@example.com"]])
def test_find_by_email_raises_invalid_query_when_email_is_not_text(email):
    with pytest.raises(InvalidQueryError):
        UserRepository().find_by_email(email)


def test_find_by_email_uses_the_lower_email_index():
    UserFactory.create_batch(3)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = (
            User.objects.get_queryset().with_email("a@example.com").query.sql_with_params()
        )
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "users_email_live_uniq" in plan


# -- find_active_users -----------------------------------------------------------------


def test_find_active_users_excludes_inactive_and_deleted_users():
    active = UserFactory.create()
    UserFactory.create(is_active=False)
    UserFactory.create(deleted=True)
    assert UserRepository().find_active_users() == [active]


def test_find_active_users_filters_by_verification():
    verified = UserFactory.create(email_verified=True)
    UserFactory.create(email_verified=False)
    assert UserRepository().find_active_users({"email_verified": True}) == [verified]
    assert verified not in UserRepository().find_active_users({"email_verified": "false"})


def test_find_active_users_filters_by_join_dates():
    now = timezone.now()
    old = UserFactory.create()
    mid = UserFactory.create()
    new = UserFactory.create()
    for user, age in ((old, 30), (mid, 10), (new, 1)):
        User.all_objects.filter(pk=user.pk).update(created_at=now - timedelta(days=age))
    found = UserRepository().find_active_users(
        {"joined_after": now - timedelta(days=20), "joined_before": now - timedelta(days=5)}
    )
    assert found == [mid]
    assert UserRepository().find_active_users(
        {"joined_after": (now - timedelta(days=2)).isoformat()}
    ) == [new]


def test_find_active_users_filters_by_first_or_last_name_contains():
    ada = UserFactory.create(first_name="Ada", last_name="Lovelace")
    grace = UserFactory.create(first_name="Grace", last_name="Hopper")
    UserFactory.create(first_name="Alan", last_name="Turing")
    assert UserRepository().find_active_users({"name": "love"}) == [ada]
    assert UserRepository().find_active_users({"name": "GRACE"}) == [grace]
    assert UserRepository().find_active_users({"name": "grace hop"}) == [grace]
    assert UserRepository().find_active_users({"name": "ada hopper"}) == []


def test_find_active_users_filters_by_email_contains_without_wildcards():
    match = UserFactory.create(email="team-lead@corp.example")
    UserFactory.create(email="someone@other.example")
    UserFactory.create(email="x_y@corp.example")
    assert UserRepository().find_active_users({"email": "LEAD@corp"}) == [match]
    assert UserRepository().find_active_users({"email": "%"}) == []


@pytest.mark.parametrize(
    ("order_by", "key"),
    [
        (["email"], lambda u: u.email),
        (["-email"], lambda u: u.email),
        (["last_name"], lambda u: (u.last_name, u.pk)),
        (["created_at"], lambda u: (u.created_at, u.pk)),
    ],
)
def test_find_active_users_sorts_by_whitelisted_fields(order_by, key):
    for last in ("Cole", "Abel", "Beck", "Abel"):
        UserFactory.create(last_name=last)
    found = UserRepository().find_active_users(order_by=order_by)
    expected = sorted(found, key=key, reverse=order_by[0].startswith("-"))
    assert [u.pk for u in found] == [u.pk for u in expected]


def test_find_active_users_applies_limit_and_offset():
    users = [UserFactory.create(email=f"u{i}@example.com") for i in range(5)]
    found = UserRepository().find_active_users(order_by=["email"], limit=2, offset=1)
    assert found == users[1:3]


@pytest.mark.parametrize(
    "filters",
    [
        {"password": "x"},
        {"email__regex": ".*"},
        {"email_verified": "maybe"},
        {"joined_after": "yesterday"},
        {"is_active": False},
        ["email_verified"],
    ],
)
def test_find_active_users_raises_invalid_query_when_filters_are_bad(filters):
    with pytest.raises(InvalidQueryError):
        UserRepository().find_active_users(filters)


@pytest.mark.parametrize("order_by", [["password"], ["first_name"], ["email; DROP TABLE users"]])
def test_find_active_users_raises_invalid_query_when_sort_is_not_whitelisted(order_by):
    with pytest.raises(InvalidQueryError):
        UserRepository().find_active_users(order_by=order_by)


@pytest.mark.parametrize("rows", [3, 9])
def test_find_active_users_runs_one_query_whatever_the_row_count(rows, django_assert_num_queries):
    UserFactory.create_batch(rows, email_verified=True)
    with django_assert_num_queries(1):
        found = UserRepository().find_active_users({"email_verified": True, "name": ""})
    assert len(found) == rows


def test_paginate_lists_active_users_with_the_same_filters(django_assert_num_queries):
    verified = [
        UserFactory.create(email=f"v{i}@example.com", email_verified=True) for i in range(5)
    ]
    UserFactory.create(email="inactive@example.com", email_verified=True, is_active=False)
    UserFactory.create(email="unverified@example.com")
    with django_assert_num_queries(2):
        page = UserRepository().paginate(
            {"is_active": True, "email_verified": True}, order_by=["email"], page=2, page_size=2
        )
    assert page.total == 5
    assert page.pages == 3
    assert page.items == verified[2:4]


def test_paginate_cursor_walks_every_active_user_once():
    expected = [UserFactory.create(last_name=f"Name{i % 3}") for i in range(7)]
    UserFactory.create(is_active=False)
    repo = UserRepository()
    seen, after = [], None
    while True:
        page = repo.paginate_cursor(
            {"is_active": True}, order_by=["last_name"], after=after, limit=3
        )
        seen.extend(page.items)
        if not page.has_next:
            break
        after = page.next_cursor
    assert sorted(u.pk for u in seen) == sorted(u.pk for u in expected)
    assert len(seen) == len(expected)


def test_paginate_cursor_refuses_a_cursor_from_other_filters():
    UserFactory.create_batch(3)
    page = UserRepository().paginate_cursor({"is_active": True}, limit=1)
    with pytest.raises(InvalidQueryError):
        UserRepository().paginate_cursor({"email_verified": True}, after=page.next_cursor, limit=1)


# -- create ----------------------------------------------------------------------------


def test_create_hashes_the_password_and_never_audits_it():
    user = UserRepository().create({"email": "new@example.com", "password": STRONG})
    stored = User.objects.get(pk=user.pk)
    assert stored.password != STRONG
    assert check_password(STRONG, stored.password)
    text = audit_text(user.pk)
    assert "created" in AuditLog.objects.filter(entity_id=str(user.pk)).values_list(
        "action", flat=True
    )
    assert STRONG not in text
    assert stored.password not in text
    assert "[redacted]" in text


def test_create_without_password_sets_an_unusable_one():
    user = UserRepository().create({"email": "nopass@example.com"})
    assert not User.objects.get(pk=user.pk).has_usable_password()


def test_create_strips_the_email_and_keeps_its_case():
    user = UserRepository().create({"email": "  Mixed.Case@Example.com  ", "password": STRONG})
    assert user.email == "Mixed.Case@Example.com"


@pytest.mark.parametrize("email", ["not-an-email", "", "   ", 42, None, "a" * 250 + "@x.io"])
def test_create_raises_validation_error_when_email_is_invalid(email):
    with pytest.raises(ValidationError) as info:
        UserRepository().create({"email": email, "password": STRONG})
    assert "email" in info.value.errors


@pytest.mark.parametrize("password", ["short", "password123", "12345678901", "", 12345678])
def test_create_raises_validation_error_when_password_is_weak_or_not_text(password):
    with pytest.raises(ValidationError) as info:
        UserRepository().create({"email": "weak@example.com", "password": password})
    assert "password" in info.value.errors
    assert not User.all_objects.filter(email="weak@example.com").exists()


def test_create_raises_conflict_when_a_live_user_has_the_email_in_any_case():
    UserFactory.create(email="taken@example.com")
    with pytest.raises(ConflictError) as info:
        UserRepository().create({"email": "TAKEN@example.com", "password": STRONG})
    assert "email" in info.value.fields
    assert isinstance(info.value.__cause__, Exception)


def test_create_raises_validation_error_for_unknown_fields_or_non_mappings():
    with pytest.raises(ValidationError):
        UserRepository().create({"email": "x@example.com", "is_admin": True})
    with pytest.raises(ValidationError):
        UserRepository().create(["email"])  # type: ignore[arg-type]


def test_create_many_hashes_every_password():
    users = UserRepository().create_many(
        [
            {"email": "m1@example.com", "password": STRONG},
            {"email": "m2@example.com", "password": STRONG + "!"},
            {"email": "m3@example.com"},
        ]
    )
    stored = {u.email: u for u in User.objects.filter(pk__in=[u.pk for u in users])}
    assert check_password(STRONG, stored["m1@example.com"].password)
    assert check_password(STRONG + "!", stored["m2@example.com"].password)
    assert not stored["m3@example.com"].has_usable_password()
    assert STRONG not in json.dumps(
        list(AuditLog.objects.filter(entity_type="user").values_list("changes", flat=True))
    )


def test_create_many_raises_validation_error_with_row_index_for_weak_password():
    with pytest.raises(ValidationError):
        UserRepository().create_many([{"email": "ok@example.com", "password": "123"}])
    assert not User.all_objects.filter(email="ok@example.com").exists()


# -- update / update_many --------------------------------------------------------------


def test_update_normalises_the_email():
    user = UserFactory.create()
    updated = UserRepository().update(user.pk, {"email": " Changed@Example.com "})
    assert updated.email == "Changed@Example.com"


def test_update_many_refuses_passwords():
    UserFactory.create()
    with pytest.raises(ValidationError) as info:
        UserRepository().update_many({}, {"password": STRONG})
    assert "password" in info.value.errors


def test_update_many_changes_matching_users():
    UserFactory.create_batch(2, first_name="Bob")
    UserFactory.create(first_name="Eve")
    assert UserRepository().update_many({"name": "bob"}, {"email_verified": True}) == 2
    assert User.objects.filter(email_verified=True).count() == 2


# -- verify_email ----------------------------------------------------------------------


def test_verify_email_marks_verified_and_audits_the_change():
    user = UserFactory.create(email_verified=False)
    verified = UserRepository().verify_email(user.pk)
    assert verified.email_verified is True
    row = AuditLog.objects.get(entity_id=str(user.pk), action="updated")
    assert row.changes["email_verified"] == {"old": False, "new": True}


def test_verify_email_is_idempotent_without_writing_again():
    user = UserFactory.create(email_verified=True)
    assert UserRepository().verify_email(str(user.pk)).email_verified is True
    assert not AuditLog.objects.filter(entity_id=str(user.pk)).exists()


@pytest.mark.parametrize("user_id", [uuid.uuid4(), "not-a-uuid", 12, None])
def test_verify_email_raises_not_found_when_user_is_unknown_or_malformed(user_id):
    with pytest.raises(NotFoundError):
        UserRepository().verify_email(user_id)


def test_verify_email_raises_not_found_when_user_is_deleted():
    user = UserFactory.create(deleted=True)
    with pytest.raises(NotFoundError):
        UserRepository().verify_email(user.pk)


# -- set_password ----------------------------------------------------------------------


def test_set_password_hashes_and_revokes_every_session_of_that_user():
    user = UserFactory.create()
    sessions = UserSessionFactory.create_batch(3, user=user)
    other = UserSessionFactory.create()

    UserRepository().set_password(user.pk, STRONG)

    stored = User.objects.get(pk=user.pk)
    assert check_password(STRONG, stored.password)
    assert not check_password("correct horse battery staple", stored.password)
    for session in sessions:
        session.refresh_from_db()
        assert session.revoked_at is not None
        assert session.revoked_reason == "password_changed"
    other.refresh_from_db()
    assert other.revoked_at is None


def test_set_password_makes_existing_tokens_invalid():
    user = UserFactory.create()
    _, token = SessionRepository().create_session(user.pk)
    assert SessionRepository().validate(token) is not None
    UserRepository().set_password(user.pk, STRONG)
    assert SessionRepository().validate(token) is None


def test_set_password_audit_rows_never_hold_password_or_hash():
    user = UserFactory.create()
    UserRepository().set_password(user.pk, STRONG)
    stored = User.objects.get(pk=user.pk)
    text = audit_text(user.pk)
    assert STRONG not in text
    assert stored.password not in text
    row = AuditLog.objects.get(entity_id=str(user.pk), action="updated")
    assert row.changes["password"] == "[redacted]"


def test_set_password_rolls_back_the_hash_when_revoking_fails(monkeypatch):
    user = UserFactory.create()
    UserSessionFactory.create(user=user)
    before = User.objects.get(pk=user.pk).password

    def fail(self, user_id, **kwargs):
        raise RepositoryError("revocation failed")

    monkeypatch.setattr(SessionRepository, "revoke_all", fail)
    with pytest.raises(RepositoryError, match="revocation failed"):
        UserRepository().set_password(user.pk, STRONG)
    assert User.objects.get(pk=user.pk).password == before
    assert not AuditLog.objects.filter(entity_id=str(user.pk)).exists()


@pytest.mark.parametrize("raw", ["", None, 123, "abc", "password"])
def test_set_password_raises_validation_error_when_password_is_invalid(raw):
    user = UserFactory.create()
    session = UserSessionFactory.create(user=user)
    with pytest.raises(ValidationError) as info:
        UserRepository().set_password(user.pk, raw)
    assert "password" in info.value.errors
    session.refresh_from_db()
    assert session.revoked_at is None


def test_set_password_rejects_a_password_too_similar_to_the_email():
    user = UserFactory.create(email="margaret.hamilton@example.com")
    with pytest.raises(ValidationError):
        UserRepository().set_password(user.pk, "margaret.hamilton")


@pytest.mark.parametrize("user_id", [uuid.uuid4(), "xyz", 0])
def test_set_password_raises_not_found_when_user_is_unknown_or_malformed(user_id):
    with pytest.raises(NotFoundError):
        UserRepository().set_password(user_id, STRONG)


# -- soft delete and restore -----------------------------------------------------------


def test_soft_delete_frees_the_email_for_a_new_registration():
    old = UserRepository().create({"email": "again@example.com", "password": STRONG})
    UserRepository().soft_delete(old.pk)
    new = UserRepository().create({"email": "Again@Example.com", "password": STRONG})
    assert new.pk != old.pk
    assert UserRepository().find_by_email("again@example.com") == new


def test_soft_delete_hides_the_user_and_revokes_their_sessions():
    user = UserFactory.create()
    session = UserSessionFactory.create(user=user)
    deleted = UserRepository().soft_delete(user.pk)
    assert deleted.deleted_at is not None
    assert UserRepository().find_by_id(user.pk) is None
    session.refresh_from_db()
    assert session.revoked_reason == "user_deleted"
    actions = set(AuditLog.objects.values_list("action", flat=True))
    assert {"soft_deleted", "revoked"} <= actions


def test_restore_raises_conflict_when_the_email_was_taken_meanwhile():
    old = UserRepository().create({"email": "clash@example.com", "password": STRONG})
    UserRepository().soft_delete(old.pk)
    UserRepository().create({"email": "CLASH@example.com", "password": STRONG})
    with pytest.raises(ConflictError) as info:
        UserRepository().restore(old.pk)
    assert info.value.fields == ("email",)
    assert "restore" in str(info.value)
    assert "email" in str(info.value)
    assert User.all_objects.get(pk=old.pk).deleted_at is not None


def test_restore_brings_the_user_back_when_the_email_is_free():
    user = UserFactory.create()
    UserRepository().soft_delete(user.pk)
    restored = UserRepository().restore(user.pk)
    assert restored.deleted_at is None
    assert UserRepository().find_by_email(user.email) == restored


@pytest.mark.parametrize("user_id", [uuid.uuid4(), "bad"])
def test_restore_raises_not_found_when_user_is_unknown_or_malformed(user_id):
    with pytest.raises(NotFoundError):
        UserRepository().restore(user_id)


def test_soft_delete_raises_not_found_when_already_deleted():
    user = UserFactory.create(deleted=True)
    with pytest.raises(NotFoundError):
        UserRepository().soft_delete(user.pk)
    assert not UserSession.objects.exists()


def test_create_with_password_none_sets_an_unusable_one():
    user = UserRepository().create({"email": "none@example.com", "password": None})
    assert not User.objects.get(pk=user.pk).has_usable_password()


def test_update_raises_conflict_when_the_new_email_belongs_to_a_live_user():
    UserFactory.create(email="first@example.com")
    second = UserFactory.create(email="second@example.com")
    with pytest.raises(ConflictError) as info:
        UserRepository().update(second.pk, {"email": "FIRST@example.com"})
    assert "email" in info.value.fields
    assert User.objects.get(pk=second.pk).email == "second@example.com"
