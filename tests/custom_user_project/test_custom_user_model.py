"""The commerce app with a project's own user model (accounts.Member): text keys, soft
delete, and none of is_active, names, join date, email_verified or unique emails.

Run by `make test` with `--ds tests.custom_user_project.settings`.
"""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from domain.auth import EmailBackend
from domain.models import Product, User
from repositories import OrderRepository, ProductRepository, SessionRepository, UserRepository
from repositories.errors import InvalidQueryError, NotFoundError
from tests.custom_user_project.accounts.models import Member

PASSWORD = "correct horse battery staple"


def member(handle: str, email: str = "", *, deleted: bool = False) -> Member:
    user = Member(handle=handle, email=email, deleted_at=timezone.now() if deleted else None)
    user.set_password(PASSWORD)
    user.save(force_insert=True)
    return user


@pytest.fixture
def product() -> Product:
    return ProductRepository().create(
        {"sku": "MUG-1", "name": "Mug", "price": Decimal("8.00"), "stock_quantity": 5}
    )


@pytest.mark.django_db
def test_domain_user_is_swapped_out_and_system_checks_pass():
    assert get_user_model() is Member
    assert User._meta.swapped == "accounts.Member"
    call_command("check", stdout=StringIO())
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())


@pytest.mark.django_db
def test_orders_take_text_keys_and_refuse_deleted_members(product):
    dana = member("dana", "dana@example.com")
    gone = member("gone", deleted=True)
    orders = OrderRepository()
    order = orders.place_order("dana", [(product.pk, 2)])
    assert order.user == dana
    assert [o.pk for o in orders.find_many({"user": "dana"})] == [order.pk]
    with pytest.raises(NotFoundError):
        orders.place_order(gone.pk, [(product.pk, 1)])
    assert Product.objects.get(pk=product.pk).stock_quantity == 3


@pytest.mark.django_db
def test_sessions_end_when_the_member_is_soft_deleted():
    member("erin", "erin@example.com")
    sessions = SessionRepository()
    _session, token = sessions.create_session("erin")
    assert sessions.validate(token) is not None
    UserRepository().soft_delete("erin")  # revokes the sessions, too
    assert sessions.validate(token) is None
    assert sessions.active_for_user("erin") == []
    with pytest.raises(NotFoundError):
        sessions.create_session("erin")


@pytest.mark.django_db
def test_user_repository_lists_and_finds_live_members_by_email():
    first = member("fay", "fay@example.com")
    member("fay2", "FAY@example.com")
    member("old", "old@example.com", deleted=True)
    users = UserRepository()
    assert users.find_by_email("Fay@Example.com") == first
    assert users.find_by_email("old@example.com") is None
    assert {m.pk for m in users.find_active_users()} == {"fay", "fay2"}
    assert [m.pk for m in users.find_many({"email": "fay"}, order_by=["email"])] == [
        "fay2",
        "fay",
    ]
    with pytest.raises(InvalidQueryError):
        users.find_many({"name": "fay"})


@pytest.mark.django_db
def test_email_backend_refuses_deleted_members():
    hal = member("hal", "hal@example.com")
    member("ivy", "ivy@example.com", deleted=True)
    backend = EmailBackend()
    assert backend.authenticate(None, username="HAL@example.com", password=PASSWORD) == hal
    assert backend.authenticate(None, username="ivy@example.com", password=PASSWORD) is None
