"""Login by email: case-insensitive, live and active users only."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate
from zeal import zeal_ignore

from domain.auth import EmailBackend
from domain.models import User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


def test_login_by_email_ignores_case():
    user = UserFactory.create(email="Dana@Example.com")
    assert authenticate(None, username="dana@EXAMPLE.com", password=PASSWORD) == user
    assert authenticate(None, email="DANA@example.com", password=PASSWORD) == user


def test_login_with_wrong_password_is_refused():
    UserFactory.create(email="erin@example.com")
    assert authenticate(None, username="erin@example.com", password="wrong") is None


def test_login_of_unknown_email_is_refused():
    assert authenticate(None, username="nobody@example.com", password=PASSWORD) is None


def test_login_without_credentials_is_refused():
    assert EmailBackend().authenticate(None, username=None, password=PASSWORD) is None
    assert EmailBackend().authenticate(None, username="x@example.com", password=None) is None


def test_login_of_deleted_user_is_refused():
    UserFactory.create(email="frank@example.com", deleted=True)
    assert authenticate(None, username="frank@example.com", password=PASSWORD) is None


def test_login_of_inactive_user_is_refused():
    UserFactory.create(email="gina@example.com", is_active=False)
    assert authenticate(None, username="gina@example.com", password=PASSWORD) is None


def test_login_finds_live_user_when_a_deleted_one_had_the_email():
    UserFactory.create(email="hal@example.com", deleted=True, password="old password")
    live = UserFactory.create(email="hal@example.com")
    assert authenticate(None, username="hal@example.com", password=PASSWORD) == live


def test_create_user_normalizes_email_and_hashes_password():
    user = User.objects.create_user("ivy@EXAMPLE.COM", "s3cret-pass")
    assert user.email == "ivy@example.com"
    assert user.password != "s3cret-pass"
    assert user.check_password("s3cret-pass")
    assert not user.is_staff
    assert not user.is_superuser
    assert user.is_active


def test_create_user_without_password_is_unusable():
    user = User.objects.create_user("jay@example.com")
    assert not user.has_usable_password()


def test_create_user_requires_email():
    with pytest.raises(ValueError, match="email"):
        User.objects.create_user("", "pw")


def test_create_superuser_sets_flags():
    admin = User.objects.create_superuser("root@example.com", "pw")
    assert admin.is_staff
    assert admin.is_superuser
    assert authenticate(None, username="ROOT@example.com", password="pw") == admin


def test_user_names_fall_back_to_email():
    user = UserFactory.build(email="kim@example.com", first_name="", last_name="")
    assert user.get_full_name() == "kim@example.com"
    assert user.get_short_name() == "kim@example.com"
    assert str(user) == "kim@example.com"
    named = UserFactory.build(first_name="Kim", last_name="Lee")
    assert named.get_full_name() == "Kim Lee"
    assert named.get_short_name() == "Kim"


def test_client_login_by_email(client):
    UserFactory.create(email="lou@example.com", is_staff=True)
    with zeal_ignore():  # login reads the session twice by design
        assert client.login(username="LOU@example.com", password=PASSWORD)
