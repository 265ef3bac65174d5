"""Error mapping by SQLSTATE: pure units with psycopg errors, then real database errors."""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
import uuid
from typing import Any

import psycopg
import psycopg.errors as pg
import psycopg_pool
import pytest
from django.contrib.postgres.constraints import ExclusionConstraint
from django.core.exceptions import ObjectDoesNotExist
from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connection,
)
from django.db import InternalError as DjangoInternalError
from django.db import ProgrammingError as DjangoProgrammingError
from django.db import models as dj_models
from django.db import transaction as django_transaction
from django.db.models import F, ProtectedError
from django.db.models.functions import Lower

from domain.models import AuditLog, Category, Product, SystemConfig, User, UserSession
from repositories.core import error_mapping
from repositories.core.error_mapping import (
    _chain,
    constraint_name_of,
    discard_broken_connection,
    is_retryable,
    raise_typed,
    sqlstate_of,
    translate,
    translate_errors,
)
from repositories.core.transactions import atomic
from repositories.errors import (
    ConflictError,
    DatabaseUnavailableError,
    InvalidQueryError,
    NotFoundError,
    QueryTimeoutError,
    ReadOnlyDatabaseError,
    RepositoryError,
    TransactionConflictError,
    ValidationError,
)
from tests.connection_faults import break_connection
from tests.factories import (
    AuditLogFactory,
    CategoryFactory,
    ProductFactory,
    SystemConfigFactory,
    UserFactory,
    UserSessionFactory,
)
from tests.repositories.sample_repositories import SampleProductRepository


def wrapped(django_class: type[Exception], pg_error: Exception) -> Exception:
    """Return a Django error raised from a psycopg error, as Django's wrapper does."""
    try:
        try:
            raise pg_error
        except psycopg.Error as exc:
            raise django_class(str(exc)) from exc
    except django_class as outer:
        return outer


def diagnosed(error_class: type[psycopg.Error], message: str, **diag: str | None) -> psycopg.Error:
    """Return a psycopg error whose `diag` holds `diag` (as the server would fill it; the
    fields it leaves out are None, as psycopg reports a field the server did not send)."""
    names = ("constraint_name", "table_name", "column_name", "message_primary", "message_detail")
    details = type("Diag", (), {**dict.fromkeys(names), **diag})()
    subclass = type(error_class.__name__, (error_class,), {"diag": property(lambda _: details)})
    return subclass(message)


# --- pure units ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (wrapped(IntegrityError, pg.UniqueViolation("dup")), ConflictError),
        (wrapped(IntegrityError, pg.ExclusionViolation("overlap")), ConflictError),
        (wrapped(IntegrityError, pg.CheckViolation("check")), ValidationError),
        (wrapped(IntegrityError, pg.NotNullViolation("null")), ValidationError),
        (wrapped(IntegrityError, pg.ForeignKeyViolation("fk")), ValidationError),
        (wrapped(IntegrityError, pg.RestrictViolation("restrict")), ValidationError),
        (wrapped(DataError, pg.StringDataRightTruncation("long")), ValidationError),
        (wrapped(DataError, pg.NumericValueOutOfRange("big")), ValidationError),
        (wrapped(DataError, pg.InvalidTextRepresentation("text")), ValidationError),
        # Django wraps the same condition in different classes; the SQLSTATE decides.
        (wrapped(OperationalError, pg.UniqueViolation("dup")), ConflictError),
        (wrapped(DjangoProgrammingError, pg.CheckViolation("check")), ValidationError),
        (wrapped(OperationalError, pg.QueryCanceled("statement")), QueryTimeoutError),
        (wrapped(OperationalError, pg.LockNotAvailable("lock")), QueryTimeoutError),
        (wrapped(OperationalError, pg.AdminShutdown("bye")), DatabaseUnavailableError),
        (wrapped(OperationalError, pg.ConnectionFailure("gone")), DatabaseUnavailableError),
        (
            wrapped(OperationalError, pg.IdleInTransactionSessionTimeout("idle")),
            DatabaseUnavailableError,
        ),
        (wrapped(OperationalError, pg.CannotConnectNow("starting")), DatabaseUnavailableError),
        (
            wrapped(OperationalError, psycopg.OperationalError("the connection is closed")),
            DatabaseUnavailableError,
        ),
        (
            wrapped(OperationalError, psycopg_pool.PoolTimeout("no connection in 10s")),
            DatabaseUnavailableError,
        ),
        (InterfaceError("connection already closed"), DatabaseUnavailableError),
        (psycopg.InterfaceError("the connection is lost"), DatabaseUnavailableError),
        (wrapped(OperationalError, pg.SerializationFailure("retry")), TransactionConflictError),
        (wrapped(OperationalError, pg.DeadlockDetected("retry")), TransactionConflictError),
        (ProtectedError("referenced", set()), ValidationError),
        (wrapped(IntegrityError, psycopg.IntegrityError("no state")), ValidationError),
        (wrapped(DataError, psycopg.DataError("NUL bytes")), ValidationError),
        (wrapped(DjangoProgrammingError, pg.UndefinedTable("no table")), RepositoryError),
        (wrapped(DjangoProgrammingError, pg.InsufficientPrivilege("append-only")), RepositoryError),
        (wrapped(OperationalError, pg.ReadOnlySqlTransaction("read-only")), ReadOnlyDatabaseError),
        # psycopg's OperationalError class, but a SQLSTATE (53100) of a live connection.
        (wrapped(OperationalError, pg.DiskFull("could not extend file")), RepositoryError),
        # Without any SQLSTATE, Django's own class decides.
        (OperationalError("server closed the connection unexpectedly"), DatabaseUnavailableError),
        (IntegrityError("refused"), ValidationError),
        (DataError("refused"), ValidationError),
        (psycopg.DataError("NUL bytes"), ValidationError),
        (DatabaseError("something else"), RepositoryError),
    ],
)
def test_translate_classifies_by_sqlstate(error, expected):
    result = translate(error)
    assert type(result) is expected


def test_translate_reports_timeout_kind():
    statement = translate(wrapped(OperationalError, pg.QueryCanceled("x")))
    lock = translate(wrapped(OperationalError, pg.LockNotAvailable("x")))
    assert (statement.kind, lock.kind) == ("statement", "lock")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (pg.QueryCanceled("canceling statement"), "statement timeout: canceling statement"),
        (pg.LockNotAvailable("could not obtain lock"), "lock timeout: could not obtain lock"),
        (
            pg.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"),
            "read-only database: cannot execute INSERT in a read-only transaction",
        ),
        (
            pg.AdminShutdown("terminating connection due to administrator command"),
            "database unavailable: terminating connection due to administrator command",
        ),
    ],
)
def test_translate_messages_keep_the_server_reason(error, message):
    assert str(translate(wrapped(OperationalError, error))) == message


def test_translate_prefers_the_primary_message_of_the_server_report():
    error = diagnosed(
        pg.FeatureNotSupported,
        "cannot do that\nDETAIL:  a long explanation",
        message_primary="cannot do that",
    )
    assert str(translate(error)) == "database error (SQLSTATE 0A000): cannot do that"
    # Nothing to quote at all: the error's class names it.
    assert str(translate(pg.FeatureNotSupported())) == (
        "database error (SQLSTATE 0A000): FeatureNotSupported"
    )


def test_translate_without_a_sqlstate_names_no_sqlstate():
    assert str(translate(DatabaseError("something else"))) == "database error: something else"
    refused = translate(IntegrityError("refused"))
    assert refused.errors == {"__all__": ["refused"]}  # type: ignore[attr-defined]


def test_translate_protected_error_keeps_its_message():
    error = translate(ProtectedError("cannot delete: referenced by 2 orders", set()))
    assert error.errors == {"__all__": ["cannot delete: referenced by 2 orders"]}  # type: ignore[attr-defined]


def test_translate_serialization_failure_is_one_attempt():
    error = translate(wrapped(OperationalError, pg.SerializationFailure("retry")))
    assert isinstance(error, TransactionConflictError)
    assert error.attempts == 1


def test_translate_does_not_exist_without_a_model_names_an_object():
    error = translate(ObjectDoesNotExist())
    assert isinstance(error, NotFoundError)
    assert (error.entity, error.key) == ("object", None)


def test_translate_returns_repository_errors_unchanged():
    error = NotFoundError("Product", 1)
    assert translate(error) is error


def test_translate_maps_does_not_exist_to_not_found():
    result = translate(Product.DoesNotExist(), model=Product)
    assert isinstance(result, NotFoundError)
    assert result.entity == "Product"


def test_translate_in_a_read_turns_invalid_values_into_invalid_query():
    result = translate(wrapped(DataError, pg.NumericValueOutOfRange("big")), reading=True)
    assert isinstance(result, InvalidQueryError)


def test_translate_falls_back_to_a_plain_repository_error_naming_the_sqlstate():
    error = pg.FeatureNotSupported("cannot do that here")
    assert error.sqlstate == "0A000"
    for raised in (error, wrapped(DjangoProgrammingError, pg.FeatureNotSupported("no"))):
        result = translate(raised)
        assert type(result) is RepositoryError
        assert "SQLSTATE 0A000" in str(result)
    assert str(translate(error)) == "database error (SQLSTATE 0A000): cannot do that here"


@pytest.mark.parametrize(
    "pg_error",
    [pg.InvalidTextRepresentation("bad"), pg.NumericValueOutOfRange("big"), pg.DivisionByZero("0")],
)
def test_translate_data_exception_depends_on_reading(pg_error):
    assert (sqlstate_of(pg_error) or "").startswith("22")
    error = wrapped(DataError, pg_error)
    read = translate(error, reading=True)
    written = translate(error, reading=False)
    default = translate(error)
    assert type(read) is InvalidQueryError
    assert type(written) is ValidationError
    assert type(default) is ValidationError
    assert read.errors == written.errors


def test_translate_errors_passes_reading_through():
    def raise_data_error() -> None:
        raise wrapped(DataError, pg.InvalidTextRepresentation("bad text"))

    with pytest.raises(RepositoryError) as reading, translate_errors(reading=True):
        raise_data_error()
    with pytest.raises(RepositoryError) as writing, translate_errors(reading=False):
        raise_data_error()
    assert type(reading.value) is InvalidQueryError
    assert type(writing.value) is ValidationError


def test_chain_yields_each_exception_once_even_when_they_form_a_cycle():
    first, second = RuntimeError("first"), RuntimeError("second")
    first.__context__ = second
    second.__cause__ = first
    assert list(itertools.islice(_chain(first), 5)) == [first, second]
    assert sqlstate_of(first) is None  # and a walk for a SQLSTATE ends


def test_sqlstate_of_walks_causes_and_contexts_without_looping():
    inner = pg.UniqueViolation("dup")
    outer = RuntimeError("outer")
    outer.__context__ = inner
    inner.__context__ = outer  # a cycle
    assert sqlstate_of(outer) == "23505"
    assert sqlstate_of(RuntimeError("plain")) is None
    assert is_retryable(wrapped(OperationalError, pg.DeadlockDetected("x")))
    assert not is_retryable(wrapped(IntegrityError, pg.UniqueViolation("x")))


def test_translate_errors_chains_the_original_error():
    original = wrapped(IntegrityError, pg.UniqueViolation("dup"))
    with pytest.raises(ConflictError) as caught, translate_errors():
        raise original
    assert caught.value.__cause__ is original


@pytest.mark.django_db
def test_translate_errors_types_retryable_errors_inside_a_transaction_keeping_the_sqlstate():
    original = wrapped(OperationalError, pg.SerializationFailure("retry"))
    with pytest.raises(TransactionConflictError) as caught, translate_errors():
        raise original
    assert caught.value.__cause__ is original
    assert is_retryable(caught.value)  # what `transactional` checks before retrying


def test_translate_errors_types_retryable_errors_when_no_transaction_encloses_it():
    original = wrapped(OperationalError, pg.DeadlockDetected("deadlock"))
    with pytest.raises(TransactionConflictError) as caught, translate_errors():
        raise original
    assert caught.value.__cause__ is original
    assert caught.value.attempts == 1


def test_translate_errors_ignores_other_exceptions():
    with pytest.raises(KeyError), translate_errors():
        raise KeyError("x")


def test_translate_errors_works_as_a_decorator():
    @translate_errors(Product)
    def fail() -> None:
        raise wrapped(DataError, pg.StringDataRightTruncation("too long"))

    with pytest.raises(ValidationError):
        fail()
    assert fail.__name__ == "fail"


def test_translate_errors_names_fields_from_its_model_when_the_server_names_no_table():
    duplicate = diagnosed(pg.UniqueViolation, "dup", constraint_name="products_sku_live_uniq")
    with pytest.raises(ConflictError) as caught, translate_errors(Product):
        raise wrapped(IntegrityError, duplicate)
    assert str(caught.value) == "a product with this sku already exists"
    assert caught.value.fields == ("sku",)
    null = diagnosed(pg.NotNullViolation, "null", column_name="category_id")
    assert translate(null, model=Product).errors == {  # type: ignore[attr-defined]
        "category": ["This field cannot be null."]
    }


def test_translate_errors_as_a_decorator_keeps_its_model_alias_and_reading(monkeypatch):
    discarded: list[str] = []
    monkeypatch.setattr(error_mapping, "discard_broken_connection", discarded.append)

    @translate_errors(Product, using="replica_0", reading=True)
    def fail(error: Exception) -> None:
        raise error

    duplicate = diagnosed(pg.UniqueViolation, "dup", constraint_name="products_sku_live_uniq")
    with pytest.raises(ConflictError) as conflict:
        fail(wrapped(IntegrityError, duplicate))
    assert conflict.value.fields == ("sku",)
    with pytest.raises(InvalidQueryError):
        fail(wrapped(DataError, pg.InvalidTextRepresentation("bad text")))
    with pytest.raises(DatabaseUnavailableError):
        fail(wrapped(OperationalError, pg.AdminShutdown("bye")))
    assert discarded == ["replica_0"]


def test_translate_errors_discards_the_connection_of_its_own_alias(monkeypatch):
    discarded: list[str] = []
    monkeypatch.setattr(error_mapping, "discard_broken_connection", discarded.append)
    with pytest.raises(DatabaseUnavailableError), translate_errors(using="replica_0"):
        raise wrapped(OperationalError, pg.AdminShutdown("bye"))
    assert discarded == ["replica_0"]


def test_raise_typed_treats_the_error_as_a_write_unless_told_otherwise():
    error = wrapped(DataError, pg.InvalidTextRepresentation("bad text"))
    with pytest.raises(RepositoryError) as written:
        raise_typed(error)
    with pytest.raises(RepositoryError) as read:
        raise_typed(error, reading=True)
    assert type(written.value) is ValidationError
    assert type(read.value) is InvalidQueryError
    assert written.value.__cause__ is error


def test_constraint_name_of_reads_the_server_report():
    error = diagnosed(pg.UniqueViolation, "dup", constraint_name="products_sku_live_uniq")
    assert constraint_name_of(wrapped(IntegrityError, error)) == "products_sku_live_uniq"
    assert constraint_name_of(wrapped(IntegrityError, pg.UniqueViolation("dup"))) is None
    assert constraint_name_of(KeyError("not a database error")) is None


# --- real database errors ------------------------------------------------------------------


def raise_in_savepoint(action, model=None) -> RepositoryError:
    with (
        pytest.raises(RepositoryError) as caught,
        translate_errors(model),
        django_transaction.atomic(),
    ):
        action()
    assert caught.value.__cause__ is not None
    return caught.value


@pytest.mark.django_db
def test_real_unique_violation_names_field_and_constraint():
    first, second = ProductFactory.create_batch(2)
    error = raise_in_savepoint(
        lambda: Product.objects.filter(pk=second.pk).update(sku=first.sku), Product
    )
    assert isinstance(error, ConflictError)
    assert (error.fields, error.constraint) == (("sku",), "products_sku_live_uniq")
    assert str(error) == "a product with this sku already exists"
    assert error.__cause__ is not None
    assert constraint_name_of(error.__cause__) == "products_sku_live_uniq"


@pytest.mark.django_db
def test_real_unique_violation_of_a_unique_field_names_it():
    SystemConfigFactory.create(key="taken")
    error = raise_in_savepoint(lambda: SystemConfig.objects.create(key="taken"))
    assert isinstance(error, ConflictError)
    assert (error.fields, error.constraint) == (("key",), "system_config_key_key")
    assert str(error) == "a systemconfig with this key already exists"


def test_conflict_error_messages_name_the_model_and_fields():
    def unique(constraint: str, detail: str | None = None) -> RepositoryError:
        error = diagnosed(
            pg.UniqueViolation,
            "duplicate key value violates unique constraint",
            constraint_name=constraint,
            table_name="products",
            message_detail=detail,
        )
        return translate(wrapped(IntegrityError, error))

    assert str(unique("products_sku_live_uniq")) == "a product with this sku already exists"
    assert str(unique("mystery_uniq")) == (
        "a product with these values already exists (mystery_uniq)"
    )
    detailed = unique("mystery_uniq", "Key (name, sku)=(a, b) already exists.")
    assert str(detailed) == "a product with this name, sku already exists"
    assert detailed.fields == ("name", "sku")  # type: ignore[attr-defined]
    overlap = diagnosed(
        pg.ExclusionViolation,
        "conflicting key value violates exclusion constraint",
        constraint_name="no_overlap",
        table_name="products",
    )
    assert str(translate(overlap)) == "product overlaps an existing row (no_overlap)"
    assert str(translate(diagnosed(pg.UniqueViolation, "dup", constraint_name="c"))) == (
        "a row with these values already exists (c)"
    )


def test_conflict_error_without_a_constraint_name_says_no_none():
    duplicate = translate(wrapped(IntegrityError, pg.UniqueViolation("dup")))
    overlap = translate(wrapped(IntegrityError, pg.ExclusionViolation("overlap")))
    assert str(duplicate) == "a row with these values already exists"
    assert str(overlap) == "row overlaps an existing row"
    assert duplicate.constraint is None  # type: ignore[attr-defined]


def test_conflict_fields_from_the_detail_are_field_names_not_columns():
    error = diagnosed(
        pg.UniqueViolation,
        "duplicate key value violates unique constraint",
        constraint_name="products_category_name_uniq",
        table_name="products",
        message_detail="Key (category_id, lower(name::text))=(7, shoe) already exists.",
    )
    assert translate(error).fields == ("category", "name")  # type: ignore[attr-defined]


def unique_without_detail(constraint: str, table: str) -> RepositoryError:
    """Translate a unique violation whose report has no `Key (...)=(...)` detail (the server
    leaves it out when the role may not read the values)."""
    error = diagnosed(
        pg.UniqueViolation,
        "duplicate key value violates unique constraint",
        constraint_name=constraint,
        table_name=table,
    )
    return translate(wrapped(IntegrityError, error))


def test_conflict_fields_come_from_the_declared_constraint_without_a_detail():
    email = unique_without_detail("users_email_live_uniq", "users")  # UniqueConstraint(Lower(..))
    assert email.fields == ("email",)  # type: ignore[attr-defined]
    assert str(email) == "a user with this email already exists"
    key = unique_without_detail("system_config_key_key", "system_config")  # unique=True
    assert key.fields == ("key",)  # type: ignore[attr-defined]
    assert str(key) == "a systemconfig with this key already exists"
    # No unique=True field behind these names: not the non-unique name, not the primary key.
    assert unique_without_detail("products_name_key", "products").fields == ()  # type: ignore[attr-defined]
    assert unique_without_detail("products_ident_key", "products").fields == ()  # type: ignore[attr-defined]


class ExternalUnique(dj_models.BaseConstraint):
    """A constraint kind of another library, declaring neither fields nor expressions."""


class Booking(dj_models.Model):
    """A model this project does not have, for the constraint kinds the domain does not use
    (F() and plain-name expressions, exclusions, custom messages, nested lookups)."""

    room = dj_models.CharField(max_length=20)
    starts_at = dj_models.DateTimeField()
    ends_at = dj_models.DateTimeField()
    price = dj_models.IntegerField()

    class Meta:
        app_label = "tests_error_mapping"
        managed = False
        db_table = "tests_bookings"
        constraints = [
            dj_models.UniqueConstraint(F("room"), Lower("starts_at"), name="bookings_slot_uniq"),
            ExternalUnique(name="bookings_external_uniq"),
            ExclusionConstraint(
                name="bookings_no_overlap",
                expressions=[("room", "="), (F("starts_at"), "&&")],
            ),
            dj_models.CheckConstraint(
                condition=dj_models.Q(price__gte=0),
                name="bookings_price_ok",
                violation_error_message="A booking cannot cost less than nothing.",
            ),
            dj_models.CheckConstraint(
                condition=dj_models.Q(ends_at__date__gte=F("starts_at__date")),
                name="bookings_ends_after_start",
            ),
        ]


def test_conflict_fields_of_f_expressions_and_exclusion_constraints():
    slot = diagnosed(pg.UniqueViolation, "dup", constraint_name="bookings_slot_uniq")
    overlap = diagnosed(pg.ExclusionViolation, "overlap", constraint_name="bookings_no_overlap")
    assert translate(slot, model=Booking).fields == ("room", "starts_at")  # type: ignore[attr-defined]
    overlapping = translate(overlap, model=Booking)
    assert overlapping.fields == ("room", "starts_at")  # type: ignore[attr-defined]
    assert str(overlapping) == "booking overlaps an existing row (bookings_no_overlap)"
    external = diagnosed(pg.UniqueViolation, "dup", constraint_name="bookings_external_uniq")
    assert str(translate(external, model=Booking)) == (
        "a booking with these values already exists (bookings_external_uniq)"
    )


def test_check_violation_messages_and_fields_of_declared_checks():
    def check(constraint: str) -> RepositoryError:
        error = diagnosed(
            pg.CheckViolation,
            "new row violates check constraint",
            constraint_name=constraint,
            message_primary=f'new row for relation "tests_bookings" violates check constraint '
            f'"{constraint}"',
        )
        return translate(wrapped(IntegrityError, error), model=Booking)

    assert check("bookings_price_ok").errors == {  # type: ignore[attr-defined]
        "price": ["A booking cannot cost less than nothing."]
    }
    assert check("bookings_ends_after_start").errors == {  # type: ignore[attr-defined]
        "ends_at": ["breaks the rule bookings_ends_after_start"],
        "starts_at": ["breaks the rule bookings_ends_after_start"],
    }
    # No report at all: nothing to name.
    assert translate(wrapped(IntegrityError, pg.CheckViolation("check"))).errors == {  # type: ignore[attr-defined]
        "__all__": ["invalid value"]
    }


def test_not_null_violation_without_a_column_is_about_the_row():
    error = translate(wrapped(IntegrityError, pg.NotNullViolation("null")))
    assert error.errors == {"__all__": ["This field cannot be null."]}  # type: ignore[attr-defined]


def test_foreign_key_violation_without_a_detail_still_says_what_happened():
    missing = translate(wrapped(IntegrityError, pg.ForeignKeyViolation("fk")))
    assert missing.errors == {  # type: ignore[attr-defined]
        "__all__": ["refers to a row missing from the referenced table"]
    }
    referenced = diagnosed(
        pg.ForeignKeyViolation, "fk", message_detail="Key (id)=(7) is still referenced."
    )
    assert translate(referenced).errors == {  # type: ignore[attr-defined]
        "__all__": ["the row is still referenced from another table"]
    }


def test_other_data_errors_name_the_column_the_server_reports():
    too_long = diagnosed(
        pg.StringDataRightTruncation,
        "value too long",
        message_primary="value too long for type character(3)",
        table_name="products",
        column_name="category_id",
    )
    assert translate(too_long).errors == {  # type: ignore[attr-defined]
        "category": ["value too long for type character(3)"]
    }
    bare = wrapped(DataError, pg.StringDataRightTruncation("value too long"))
    assert translate(bare).errors == {"__all__": ["value too long"]}  # type: ignore[attr-defined]


@pytest.mark.django_db
def test_real_unique_violation_on_lower_email_index_names_email():
    UserFactory.create(email="Same@example.com")
    error = raise_in_savepoint(lambda: User.objects.create(email="same@EXAMPLE.com"))
    assert isinstance(error, ConflictError)
    assert error.fields == ("email",)


@pytest.mark.django_db
def test_real_unique_violation_from_detail_when_constraint_is_unknown():
    first, second = ProductFactory.create_batch(2)

    def clash() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("CREATE UNIQUE INDEX tmp_products_name_uniq ON products (lower(name))")
            cursor.execute(
                "UPDATE products SET name = %s WHERE id = %s", [first.name.upper(), second.pk]
            )

    error = raise_in_savepoint(clash, Product)
    assert isinstance(error, ConflictError)
    assert error.fields == ("name",)


@pytest.mark.django_db
def test_real_check_violation_names_field():
    product = ProductFactory.create()
    error = raise_in_savepoint(lambda: Product.objects.filter(pk=product.pk).update(price=-1))
    assert isinstance(error, ValidationError)
    assert error.errors == {"price": ["breaks the rule products_price_non_negative"]}


@pytest.mark.django_db
def test_real_check_violation_on_a_table_without_model_names_the_rule():
    def insert_negative() -> None:
        with connection.cursor() as cursor:
            cursor.execute("CREATE TEMP TABLE scratch (amount int CHECK (amount >= 0))")
            cursor.execute("INSERT INTO scratch VALUES (-1)")

    error = raise_in_savepoint(insert_negative)
    assert isinstance(error, ValidationError)
    assert error.errors == {"__all__": ["breaks the rule scratch_amount_check"]}


@pytest.mark.django_db
def test_real_trigger_check_violation_keeps_the_database_message():
    parent = CategoryFactory.create()
    child = CategoryFactory.create(parent=parent)
    error = raise_in_savepoint(
        lambda: Category.objects.filter(pk=parent.pk).update(parent=child), Category
    )
    assert isinstance(error, ValidationError)
    assert "descendant" in error.errors["__all__"][0]


@pytest.mark.django_db
def test_real_not_null_violation_names_field():
    product = ProductFactory.create()
    error = raise_in_savepoint(lambda: Product.objects.filter(pk=product.pk).update(name=None))
    assert isinstance(error, ValidationError)
    assert error.errors == {"name": ["This field cannot be null."]}


@pytest.mark.django_db
def test_real_foreign_key_violation_names_field_and_table():
    product = ProductFactory.create()

    def dangling() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        Product.objects.filter(pk=product.pk).update(category_id=uuid.uuid4())

    error = raise_in_savepoint(dangling)
    assert isinstance(error, ValidationError)
    assert list(error.errors) == ["category"]
    assert "categories" in error.errors["category"][0]


@pytest.mark.django_db
def test_real_foreign_key_violation_on_delete_says_still_referenced():
    product = ProductFactory.create()

    def orphan() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("DELETE FROM categories WHERE id = %s", [product.category_id])

    error = raise_in_savepoint(orphan)
    assert isinstance(error, ValidationError)
    assert "still referenced from products" in error.errors["__all__"][0]


@pytest.mark.django_db
def test_real_data_errors_are_validation_errors():
    product = ProductFactory.create()
    too_long = raise_in_savepoint(
        lambda: Product.objects.filter(pk=product.pk).update(currency="EURO")
    )
    assert isinstance(too_long, ValidationError)

    def bad_cast() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s::integer", ["x"])

    assert isinstance(raise_in_savepoint(bad_cast), ValidationError)


@pytest.mark.django_db
def test_real_append_only_violation_is_a_repository_error():
    row = AuditLogFactory.create()
    error = raise_in_savepoint(lambda: AuditLog.objects.filter(pk=row.pk).update(action="x"))
    assert type(error) is RepositoryError
    assert "42501" in str(error)


@pytest.mark.django_db
def test_real_statement_timeout_is_a_query_timeout():
    def slow() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = '20ms'")
            cursor.execute("SELECT pg_sleep(1)")

    error = raise_in_savepoint(slow)
    assert isinstance(error, QueryTimeoutError)
    assert error.kind == "statement"
    assert str(error) == "statement timeout: canceling statement due to statement timeout"


def _blocker() -> psycopg.Connection:
    """Open a second, independent connection to the test database."""
    wanted = {"dbname", "host", "port", "user", "password", "connect_timeout"}
    params = {k: v for k, v in connection.get_connection_params().items() if k in wanted}
    return psycopg.connect(**params, autocommit=False)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("timeouts", "kind"),
    [({"lock_timeout": 50}, "lock"), ({"statement_timeout": 50}, "statement")],
)
def test_repository_write_waiting_on_a_lock_raises_query_timeout(timeouts, kind):
    product = ProductFactory.create()
    blocker = _blocker()
    try:
        blocker.execute("SELECT 1 FROM products WHERE id = %s FOR UPDATE", [product.pk])
        with pytest.raises(QueryTimeoutError) as caught, atomic(**timeouts):
            SampleProductRepository().update(product.pk, {"name": "late"})
        assert caught.value.kind == kind
        assert str(caught.value).startswith(f"{kind} timeout: ")
    finally:
        blocker.rollback()
        blocker.close()
    assert SampleProductRepository().update(product.pk, {"name": "now"}).name == "now"


@pytest.mark.django_db(transaction=True)
def test_killed_backend_raises_unavailable_then_next_call_reconnects():
    product = ProductFactory.create()
    repository = SampleProductRepository()
    assert repository.find_by_id(product.pk) == product
    broken = connection.connection
    break_connection(connection)
    with pytest.raises(DatabaseUnavailableError) as caught:
        repository.find_by_id(product.pk)
    assert caught.value.__cause__ is not None
    assert repository.find_by_id(product.pk) == product
    assert connection.connection is not broken  # a new connection


@pytest.mark.django_db(transaction=True)
def test_killed_backend_during_a_write_leaves_no_partial_row():
    repository = SampleProductRepository()
    repository.find_many()
    break_connection(connection)
    with pytest.raises(DatabaseUnavailableError):
        repository.create({"sku": "K", "name": "k", "price": 1})
    assert repository.count() == 0
    assert repository.create({"sku": "K", "name": "k", "price": 1}).sku == "K"


@pytest.mark.django_db(transaction=True)
def test_discard_broken_connection_forgets_a_dead_socket():
    connection.ensure_connection()
    connection.connection.close()  # the socket is gone under Django's feet
    discard_broken_connection()
    assert SampleProductRepository().count() == 0


@pytest.mark.django_db
def test_real_check_comparing_two_columns_names_both_fields():
    session = UserSessionFactory.create()
    error = raise_in_savepoint(
        lambda: UserSession.objects.filter(pk=session.pk).update(expires_at=F("created_at"))
    )
    assert isinstance(error, ValidationError)
    assert set(error.errors) == {"expires_at", "created_at"}


@pytest.mark.django_db
def test_real_error_on_a_table_without_model_names_the_column():
    def insert_null() -> None:
        with connection.cursor() as cursor:
            cursor.execute("CREATE TEMP TABLE scratch (label text NOT NULL)")
            cursor.execute("INSERT INTO scratch VALUES (NULL)")

    error = raise_in_savepoint(insert_null)
    assert isinstance(error, ValidationError)
    assert error.errors == {"label": ["This field cannot be null."]}


@pytest.mark.django_db(transaction=True)
def test_killed_backend_inside_a_caller_transaction_recovers_after_the_block():
    product = ProductFactory.create()
    repository = SampleProductRepository()
    with pytest.raises(DatabaseUnavailableError), django_transaction.atomic():
        break_connection(connection)
        repository.find_by_id(product.pk)
    assert repository.find_by_id(product.pk) == product


@pytest.mark.django_db(transaction=True)
def test_exhausted_pool_raises_unavailable_then_next_call_works():
    pool = getattr(connection, "pool", None)
    if pool is None:
        if os.environ.get("DB_POOL") == "0":  # the no-pool run through PgBouncer (scaling)
            pytest.skip("DB_POOL=0: no pool to exhaust (the run with the pool covers it)")
        pytest.fail("the test settings enable the psycopg pool (DB_POOL=1 by default)")
    product = ProductFactory.create()
    held: list[psycopg.Connection] = []
    outcome: list[object] = []
    saved_timeout = pool.timeout

    def other_request() -> None:
        try:
            try:
                SampleProductRepository().get_by_id(product.pk)
            except DatabaseUnavailableError as exc:
                outcome.append(exc)
            for conn in held:
                pool.putconn(conn)
            held.clear()
            outcome.append(SampleProductRepository().get_by_id(product.pk))
        finally:
            connection.close()

    try:
        pool.timeout = 0.2
        while True:
            try:
                held.append(pool.getconn(timeout=0.05))
            except psycopg_pool.PoolTimeout:
                break
        worker = threading.Thread(target=other_request)
        worker.start()
        worker.join()
    finally:
        pool.timeout = saved_timeout
        for conn in held:
            pool.putconn(conn)
    assert isinstance(outcome[0], DatabaseUnavailableError)
    assert isinstance(outcome[0].__cause__, OperationalError)
    assert outcome[1] == product


def _broken_socket() -> Any:
    """Cut the socket under `connection` and let psycopg notice: a broken connection."""
    connection.ensure_connection()
    raw = connection.connection
    with socket.socket(fileno=os.dup(raw.pgconn.socket)) as client_end:
        client_end.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(psycopg.Error):
        raw.execute("SELECT 1")
    assert raw.broken
    return raw


@pytest.mark.django_db(transaction=True)
def test_an_error_without_sqlstate_on_a_broken_connection_is_unavailable():
    """Through PgBouncer, a server session killed during a transaction makes COMMIT fail
    with psycopg's InternalError "received 2 results from command 'COMMIT'": no SQLSTATE,
    and the connection is broken. That is a lost connection, and it is discarded."""
    _broken_socket()
    lost = psycopg.InternalError("received 2 results from command 'COMMIT'")
    with pytest.raises(DatabaseUnavailableError) as caught:
        raise_typed(lost)
    assert caught.value.__cause__ is lost
    assert str(caught.value) == ("database unavailable: received 2 results from command 'COMMIT'")
    assert connection.connection is None
    assert SampleProductRepository().count() == 0  # the next call reconnects


@pytest.mark.django_db(transaction=True)
def test_an_error_without_sqlstate_after_django_closed_the_broken_connection_is_unavailable():
    """A failed COMMIT: Django's atomic tries a ROLLBACK, which fails too, and closes the
    connection before the error reaches translate_errors; the block's connection says
    what happened."""
    lost = psycopg.InternalError("received 2 results from command 'COMMIT'")
    connection.ensure_connection()
    with pytest.raises(DatabaseUnavailableError) as caught, translate_errors():
        _broken_socket()
        connection.close()
        raise DjangoInternalError(str(lost)) from lost
    assert str(caught.value) == ("database unavailable: received 2 results from command 'COMMIT'")

    @translate_errors()
    def fail_on_a_working_connection() -> None:
        connection.ensure_connection()
        raise DjangoInternalError(str(lost)) from lost

    with pytest.raises(RepositoryError) as again:
        fail_on_a_working_connection()
    assert type(again.value) is RepositoryError


@pytest.mark.django_db
def test_an_error_without_sqlstate_on_a_working_connection_stays_a_repository_error():
    connection.ensure_connection()
    odd = psycopg.InternalError("received 2 results from command 'COMMIT'")
    with pytest.raises(RepositoryError) as caught:
        raise_typed(odd)
    assert type(caught.value) is RepositoryError
    assert connection.connection is not None and not connection.connection.broken
