"""BaseRepository over the real models: reads, sorting, writes, bulk writes, soft delete."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from domain.models import AuditLog, Category, InventoryMovement, Order, Product, SystemConfig
from repositories.core.base import BaseRepository
from repositories.errors import (
    ConflictError,
    InvalidQueryError,
    NotFoundError,
    StaleObjectError,
    ValidationError,
)
from tests.factories import (
    AuditLogFactory,
    CategoryFactory,
    OrderFactory,
    ProductFactory,
    SystemConfigFactory,
    UserFactory,
)
from tests.repositories.sample_repositories import (
    SampleActiveProductRepository,
    SampleAuditLogRepository,
    SampleCategoryRepository,
    SampleConfigRepository,
    SampleOrderRepository,
    SampleProductRepository,
    SampleUserRepository,
)

pytestmark = pytest.mark.django_db


def audit_rows(entity_id: object, action: str | None = None) -> list[AuditLog]:
    rows = AuditLog.objects.filter(entity_id=str(entity_id)).order_by("id")
    return list(rows.filter(action=action) if action else rows)


def product_data(**overrides: object) -> dict[str, object]:
    return {"sku": "SKU-X", "name": "Lamp", "price": Decimal("12.50"), **overrides}


# --- reads ---------------------------------------------------------------------------------


def test_find_by_id_returns_live_row_with_category_in_one_query(django_assert_num_queries):
    product = ProductFactory.create()
    with django_assert_num_queries(1):
        found = SampleProductRepository().find_by_id(product.pk)
        assert found is not None
        assert str(found.category) == str(product.category)
    assert found == product


def test_find_by_id_accepts_key_as_text_or_model():
    product = ProductFactory.create()
    repository = SampleProductRepository()
    assert repository.find_by_id(str(product.pk)) == product
    assert repository.find_by_id(product) == product


def test_find_by_id_returns_none_for_deleted_row():
    product = ProductFactory.create(deleted=True)
    assert SampleProductRepository().find_by_id(product.pk) is None


@pytest.mark.parametrize(
    "key",
    ["not-a-uuid", 123, None, True, [], {}, b"\x00\x01", "", 1.5, object(), "\x00", -(2**70)],
)
def test_find_by_id_returns_none_for_malformed_key(key):
    ProductFactory.create()
    assert SampleProductRepository().find_by_id(key) is None


def test_find_by_id_returns_none_without_query_for_unparseable_key(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert SampleProductRepository().find_by_id("not-a-uuid") is None


@pytest.mark.parametrize("make_key", [lambda p: p.pk, lambda p: uuid.uuid4(), lambda p: "bad"])
def test_get_by_id_raises_not_found_for_deleted_missing_or_malformed_key(make_key):
    product = ProductFactory.create(deleted=True)
    with pytest.raises(NotFoundError) as caught:
        SampleProductRepository().get_by_id(make_key(product))
    assert caught.value.entity == "Product"


def test_get_by_id_returns_live_row():
    product = ProductFactory.create()
    assert SampleProductRepository().get_by_id(product.pk) == product


def test_find_many_returns_list_in_default_order_with_pk_tiebreak():
    ProductFactory.create(name="b")
    twins = [ProductFactory.create(name="a") for _ in range(3)]
    rows = SampleProductRepository().find_many()
    assert type(rows) is list
    assert [p.name for p in rows] == ["a", "a", "a", "b"]
    assert [p.pk for p in rows[:3]] == sorted(p.pk for p in twins)


@pytest.mark.parametrize("count", [3, 12])
def test_find_many_loads_categories_in_one_query_whatever_the_row_count(
    count, django_assert_num_queries
):
    ProductFactory.create_batch(count)
    with django_assert_num_queries(1):
        rows = SampleProductRepository().find_many()
        names = [str(p.category) for p in rows]
    assert len(names) == count


def test_find_many_prefetches_live_products_in_two_queries(django_assert_num_queries):
    categories = CategoryFactory.create_batch(3)
    for category in categories:
        ProductFactory.create_batch(2, category=category)
        ProductFactory.create(category=category, deleted=True)
    with django_assert_num_queries(2):
        rows = SampleCategoryRepository().find_many()
        counts = [len(c.products.all()) for c in rows]
    assert counts == [2, 2, 2]


def test_find_many_sorts_descending_and_by_several_fields():
    ProductFactory.create(name="a", price=Decimal("3"))
    ProductFactory.create(name="b", price=Decimal("3"))
    ProductFactory.create(name="c", price=Decimal("1"))
    rows = SampleProductRepository().find_many(order_by=["-price", "-name"])
    assert [p.name for p in rows] == ["b", "a", "c"]
    assert [p.name for p in SampleProductRepository().find_many(order_by="-name")] == [
        "c",
        "b",
        "a",
    ]


def test_find_many_applies_limit_and_offset():
    for name in "abcde":
        ProductFactory.create(name=name)
    repository = SampleProductRepository()
    assert [p.name for p in repository.find_many(limit=2, offset=1)] == ["b", "c"]
    assert [p.name for p in repository.find_many(offset=3)] == ["d", "e"]
    assert repository.find_many(limit=0) == []


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("limit", -1),
        ("limit", "2"),
        ("limit", True),
        ("offset", -1),
        ("offset", 2**63),
        ("offset", 1.0),
    ],
)
def test_find_many_rejects_bad_limit_or_offset_without_query(
    argument, value, django_assert_num_queries
):
    with django_assert_num_queries(0), pytest.raises(InvalidQueryError) as caught:
        SampleProductRepository().find_many(**{argument: value})
    assert argument in caught.value.errors


def test_find_many_includes_soft_deleted_rows_only_when_asked():
    live = ProductFactory.create()
    gone = ProductFactory.create(deleted=True)
    repository = SampleProductRepository()
    assert repository.find_many() == [live]
    assert set(repository.find_many(include_deleted=True)) == {live, gone}
    assert repository.count(include_deleted=True) == 2


def test_find_many_rejects_non_boolean_include_deleted():
    with pytest.raises(InvalidQueryError):
        SampleProductRepository().find_many(include_deleted="yes")  # type: ignore[arg-type]


def test_find_first_returns_first_match_or_none():
    ProductFactory.create(name="b", price=Decimal("1"))
    ProductFactory.create(name="a", price=Decimal("5"))
    repository = SampleProductRepository()
    assert str(repository.find_first()).endswith(" a")
    assert str(repository.find_first(order_by=["price"])).endswith(" b")
    assert repository.find_first({"name": "zzz"}) is None


def test_count_and_exists_follow_filters(django_assert_num_queries):
    ProductFactory.create(name="Red lamp")
    ProductFactory.create(name="Blue lamp")
    ProductFactory.create(name="Red chair", deleted=True)
    repository = SampleProductRepository()
    with django_assert_num_queries(4):
        assert repository.count() == 2
        assert repository.count({"name": "red"}) == 1
        assert repository.exists({"name": "blue"}) is True
        assert repository.exists({"name": "chair"}) is False
    assert repository.exists({"name": "chair"}, include_deleted=True) is True


# --- sorting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "order_by",
    [
        ["?"],
        ["user__password"],
        ["category__name"],
        [""],
        ["-"],
        ["--name"],
        ["name; DROP TABLE products"],
        ["description"],
        ["search_vector"],
        ["name", "name"],
        [5],
        [None],
        {"name": 1},
        5,
    ],
)
def test_find_many_rejects_sort_before_any_query(order_by, django_assert_num_queries):
    with django_assert_num_queries(0), pytest.raises(InvalidQueryError) as caught:
        SampleProductRepository().find_many(order_by=order_by)
    assert "order_by" in caught.value.errors


def test_sortable_fields_must_name_sortable_columns():
    class Broken(BaseRepository[Product]):
        model = Product
        sortable_fields = ("category",)

    with pytest.raises(TypeError, match="category_id"):
        Broken()


@pytest.mark.parametrize("deferred", ["search_vectr", "category__slugg", "name__x"])
def test_deferred_fields_must_name_fields_when_the_repository_is_built(deferred):
    class Misspelled(BaseRepository[Product]):
        model = Product
        deferred_fields = (deferred,)

    with pytest.raises(TypeError, match="deferred_fields"):
        Misspelled()


def test_default_order_is_validated_when_the_repository_is_built():
    class Broken(BaseRepository[Product]):
        model = Product
        sortable_fields = ("name",)
        default_order = ("price",)

    with pytest.raises(InvalidQueryError) as caught:
        Broken()
    assert "default_order" in caught.value.errors


def test_repository_without_model_raises_type_error():
    class Modelless(BaseRepository[Product]):
        pass

    with pytest.raises(TypeError, match="model"):
        Modelless()


def test_repository_keeps_its_database_alias():
    assert SampleProductRepository(using="default").using == "default"


# --- create --------------------------------------------------------------------------------


def test_create_returns_row_with_key_category_and_audit_snapshot(django_assert_max_num_queries):
    category = CategoryFactory.create()
    with django_assert_max_num_queries(7):
        product = SampleProductRepository().create(product_data(category=category))
        assert str(product.category) == category.name
    assert isinstance(product.pk, uuid.UUID)
    assert product.version == 1
    stored = Product.objects.get(pk=product.pk)
    assert (stored.sku, stored.price, stored.category_id) == (
        "SKU-X",
        Decimal("12.50"),
        category.pk,
    )
    [entry] = audit_rows(product.pk)
    assert (entry.action, entry.entity_type) == ("created", "product")
    assert entry.changes["sku"] == "SKU-X"
    assert entry.changes["price"] == "12.50"
    assert "search_vector" not in entry.changes


@pytest.mark.parametrize("as_", ["instance", "key", "attname", "text", "attname_instance"])
def test_create_accepts_foreign_key_as_instance_or_key(as_):
    category = CategoryFactory.create()
    value = {
        "attname_instance": {"category_id": category},
        "instance": {"category": category},
        "key": {"category": category.pk},
        "attname": {"category_id": category.pk},
        "text": {"category_id": str(category.pk)},
    }[as_]
    product = SampleProductRepository().create(product_data(**value))
    assert product.category_id == category.pk


def test_create_accepts_no_category():
    assert SampleProductRepository().create(product_data(category=None)).category is None


@pytest.mark.parametrize(
    "field", ["id", "version", "deleted_at", "created_at", "updated_at", "search_vector", "bogus"]
)
def test_create_rejects_unknown_and_managed_fields_without_query(field, django_assert_num_queries):
    with django_assert_num_queries(0), pytest.raises(ValidationError) as caught:
        SampleProductRepository().create(product_data(**{field: "x"}))
    assert caught.value.errors == {field: ["Unknown field."]}


def test_create_rejects_non_string_field_names():
    with pytest.raises(ValidationError) as caught:
        SampleProductRepository().create({**product_data(), 5: "x"})  # type: ignore[dict-item]
    assert "5" in caught.value.errors


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("price", "abc"),
        ("price", Decimal("-1")),
        ("price", Decimal("NaN")),
        ("price", Decimal("1e20")),
        ("currency", "eur"),
        ("stock_quantity", "x"),
        ("stock_quantity", -5),
        ("stock_quantity", 2**40),
        ("stock_quantity", True),
        ("price", False),
        ("is_active", "maybe"),
        ("name", None),
        ("sku", ""),
        ("name", "a\x00b"),
        ("name", "x" * 300),
        ("name", ["a"]),
        ("category", "nope"),
        ("category", True),
        ("category", b"\xff"),
        ("category", object()),
        ("category", UserFactory.build()),
    ],
)
def test_create_reports_invalid_value_per_field_without_query(
    field, value, django_assert_num_queries
):
    data = product_data(**{field: value})
    with django_assert_num_queries(0), pytest.raises(ValidationError) as caught:
        SampleProductRepository().create(data)
    assert list(caught.value.errors) == [field]
    assert all(isinstance(m, str) and m for m in caught.value.errors[field])


def test_create_requires_mandatory_fields():
    with pytest.raises(ValidationError) as caught:
        SampleProductRepository().create({})
    assert caught.value.errors == {
        "sku": ["This field is required."],
        "name": ["This field is required."],
        "price": ["This field is required."],
    }


@pytest.mark.parametrize("data", [None, [("sku", "a")], "sku=a"])
def test_create_rejects_data_that_is_not_a_mapping(data):
    with pytest.raises(ValidationError) as caught:
        SampleProductRepository().create(data)
    assert "__all__" in caught.value.errors


def test_create_rejects_a_field_given_twice():
    category = CategoryFactory.create()
    with pytest.raises(ValidationError) as caught:
        SampleProductRepository().create(product_data(category=category, category_id=category.pk))
    assert "category" in caught.value.errors


def test_create_raises_conflict_naming_sku_and_leaves_no_audit_row():
    ProductFactory.create(sku="DUP")
    before = AuditLog.objects.count()
    with pytest.raises(ConflictError) as caught:
        SampleProductRepository().create(product_data(sku="DUP"))
    assert caught.value.fields == ("sku",)
    assert caught.value.constraint == "products_sku_live_uniq"
    assert caught.value.with_deleted_row is False
    assert "sku" in str(caught.value)
    assert caught.value.__cause__ is not None
    assert AuditLog.objects.count() == before


def test_create_allows_sku_of_a_soft_deleted_product():
    ProductFactory.create(sku="REUSE", deleted=True)
    assert SampleProductRepository().create(product_data(sku="REUSE")).sku == "REUSE"


def test_create_raises_validation_error_when_category_does_not_exist():
    with pytest.raises(ValidationError) as caught:
        SampleProductRepository().create(product_data(category_id=uuid.uuid4()))
    assert list(caught.value.errors) == ["category"]
    assert "categories" in caught.value.errors["category"][0]


def test_create_maps_case_insensitive_email_clash_to_email_field():
    UserFactory.create(email="Ann@example.com")
    with pytest.raises(ConflictError) as caught:
        SampleUserRepository().create({"email": "ann@EXAMPLE.com", "password": "x"})
    assert caught.value.fields == ("email",)
    assert caught.value.constraint == "users_email_live_uniq"


def test_create_maps_unique_column_to_its_field():
    SystemConfigFactory.create(key="site.name")
    with pytest.raises(ConflictError) as caught:
        SampleConfigRepository().create({"key": "site.name", "value": 1})
    assert caught.value.fields == ("key",)


def test_create_maps_check_violation_to_field_messages():
    with pytest.raises(ValidationError) as caught:
        SampleConfigRepository().create({"key": "bad key!", "value": 1})
    assert list(caught.value.errors) == ["key"]
    assert "system_config_key_format" in caught.value.errors["key"][0]


# --- update --------------------------------------------------------------------------------


def test_update_changes_fields_bumps_version_and_updated_at_and_audits_diff():
    product = ProductFactory.create(name="Old", price=Decimal("5.00"))
    updated = SampleProductRepository().update(
        product.pk, {"name": "New", "price": Decimal("5.00")}
    )
    assert (updated.name, updated.version) == ("New", 2)
    assert updated.updated_at > product.updated_at
    assert updated.category == product.category
    [entry] = audit_rows(product.pk, "updated")
    assert entry.changes == {"name": {"old": "Old", "new": "New"}}


def test_update_with_expected_version_succeeds_when_version_matches():
    product = ProductFactory.create()
    repository = SampleProductRepository()
    first = repository.update(product.pk, {"name": "x"}, expected_version=1)
    second = repository.update(product.pk, {"name": "y"}, expected_version=first.version)
    assert second.version == 3


def test_update_raises_stale_object_error_when_version_moved():
    product = ProductFactory.create()
    Product.objects.filter(pk=product.pk).update(version=F("version") + 1)
    with pytest.raises(StaleObjectError) as caught:
        SampleProductRepository().update(product.pk, {"name": "x"}, expected_version=1)
    assert (caught.value.expected_version, caught.value.actual_version) == (1, 2)
    assert Product.objects.get(pk=product.pk).name == product.name


@pytest.mark.django_db(transaction=True)
def test_update_raises_stale_object_error_when_a_concurrent_writer_wins_the_race():
    product = ProductFactory.create()

    def concurrent_edit() -> None:
        try:
            Product.objects.filter(pk=product.pk).update(version=F("version") + 1, name="theirs")
        finally:
            connection.close()

    fired: list[str] = []

    def between_read_and_write(execute, sql, params, many, context):
        if not fired and sql.lstrip("/* ").split("*/")[-1].lstrip().startswith("UPDATE"):
            fired.append(sql)
            other = threading.Thread(target=concurrent_edit)
            other.start()
            other.join()
        return execute(sql, params, many, context)

    with connection.execute_wrapper(between_read_and_write), pytest.raises(StaleObjectError):
        SampleProductRepository().update(product.pk, {"name": "mine"}, expected_version=1)
    assert fired
    assert Product.objects.get(pk=product.pk).name == "theirs"
    assert audit_rows(product.pk, "updated") == []


def test_update_bumps_updated_at_on_unversioned_model():
    category = CategoryFactory.create(name="Old")
    updated = SampleCategoryRepository().update(category.pk, {"name": "New"})
    assert updated.name == "New"
    assert updated.updated_at > category.updated_at


def test_update_with_expected_version_on_unversioned_model_raises_validation_error():
    category = CategoryFactory.create()
    with pytest.raises(ValidationError, match="version"):
        SampleCategoryRepository().update(category.pk, {"name": "x"}, expected_version=1)


@pytest.mark.parametrize("version", [-1, "1", True, 1.0])
def test_update_rejects_bad_expected_version(version):
    product = ProductFactory.create()
    with pytest.raises(ValidationError) as caught:
        SampleProductRepository().update(product.pk, {"name": "x"}, expected_version=version)
    assert "expected_version" in caught.value.errors


@pytest.mark.parametrize("deleted", [True, False])
def test_update_raises_not_found_for_deleted_or_missing_row(deleted):
    product = ProductFactory.create(deleted=True)
    key = product.pk if deleted else uuid.uuid4()
    with pytest.raises(NotFoundError):
        SampleProductRepository().update(key, {"name": "x"})


def test_update_raises_not_found_for_malformed_key_without_query(django_assert_num_queries):
    with django_assert_num_queries(0), pytest.raises(NotFoundError):
        SampleProductRepository().update("nope", {"name": "x"})


def test_update_validates_data_before_any_query(django_assert_num_queries):
    product = ProductFactory.create()
    with django_assert_num_queries(0), pytest.raises(ValidationError) as caught:
        SampleProductRepository().update(product.pk, {"price": "cheap", "version": 9})
    assert set(caught.value.errors) == {"price", "version"}


def test_update_raises_conflict_when_sku_is_taken():
    ProductFactory.create(sku="TAKEN")
    product = ProductFactory.create()
    with pytest.raises(ConflictError) as caught:
        SampleProductRepository().update(product.pk, {"sku": "TAKEN"})
    assert caught.value.fields == ("sku",)


def test_update_raises_validation_error_for_missing_category():
    product = ProductFactory.create()
    with pytest.raises(ValidationError) as caught:
        SampleProductRepository().update(product.pk, {"category": uuid.uuid4()})
    assert "category" in caught.value.errors


# --- bulk writes ---------------------------------------------------------------------------


def _rows(count: int, prefix: str = "B") -> list[dict[str, object]]:
    return [{"sku": f"{prefix}-{i}", "name": f"Item {i}", "price": i} for i in range(count)]


def test_create_many_returns_rows_with_database_keys_and_one_audit_row_each():
    created = SampleProductRepository().create_many(_rows(5))
    assert all(isinstance(p.pk, uuid.UUID) for p in created)
    stored = dict(Product.objects.values_list("pk", "sku"))
    assert {p.pk: p.sku for p in created} == stored
    logged = AuditLog.objects.filter(action="created", entity_type="product")
    assert sorted(logged.values_list("entity_id", flat=True)) == sorted(str(p.pk) for p in created)


def test_create_many_sends_a_constant_number_of_queries_per_batch():
    repository = SampleProductRepository()
    with CaptureQueriesContext(connection) as small:
        repository.create_many(_rows(2, "S"))
    with CaptureQueriesContext(connection) as large:
        repository.create_many(_rows(60, "L"))
    assert len(small) == len(large)
    with CaptureQueriesContext(connection) as batched:
        repository.create_many(_rows(5, "C"), batch_size=2)
    # three batches of (keys, insert, audit) instead of one
    assert len(batched) == len(small) + 2 * 3


def test_create_many_checks_foreign_keys_inside_the_call():
    with pytest.raises(ValidationError) as caught:
        SampleProductRepository().create_many([product_data(category_id=uuid.uuid4())])
    assert "category" in caught.value.errors
    assert Product.objects.count() == 0


def test_create_many_validates_every_row_before_writing(django_assert_num_queries):
    rows = [*_rows(2), {"sku": "Z", "name": "z", "price": "free"}, {"bogus": 1}]
    with django_assert_num_queries(0), pytest.raises(ValidationError) as caught:
        SampleProductRepository().create_many(rows)  # type: ignore[arg-type]
    assert "2.price" in caught.value.errors
    assert "3.bogus" in caught.value.errors
    assert "3.sku" in caught.value.errors


def test_create_many_is_atomic_when_a_later_batch_conflicts():
    ProductFactory.create(sku="B-3")
    with pytest.raises(ConflictError):
        SampleProductRepository().create_many(_rows(4), batch_size=2)
    assert Product.objects.count() == 1
    assert not AuditLog.objects.filter(action="created").exists()


@pytest.mark.parametrize("rows", [{"sku": "a"}, "rows", 5])
def test_create_many_rejects_rows_that_are_not_a_list_of_mappings(rows):
    with pytest.raises(ValidationError):
        SampleProductRepository().create_many(rows)


@pytest.mark.parametrize("batch_size", [0, -1, "10", True])
def test_create_many_rejects_bad_batch_size(batch_size):
    with pytest.raises(InvalidQueryError):
        SampleProductRepository().create_many(_rows(1), batch_size=batch_size)


def test_create_many_of_nothing_sends_no_insert(django_assert_max_num_queries):
    with django_assert_max_num_queries(2):  # savepoint + release
        assert SampleProductRepository().create_many([]) == []


def test_update_many_changes_matching_rows_with_constant_queries_and_per_row_diffs():
    repository = SampleProductRepository()
    few = ProductFactory.create_batch(2, name="few", is_active=True)
    many = ProductFactory.create_batch(20, name="many", is_active=True)
    untouched = ProductFactory.create(name="other")
    with CaptureQueriesContext(connection) as small:
        assert repository.update_many({"name": "few"}, {"is_active": False}) == 2
    with CaptureQueriesContext(connection) as large:
        assert repository.update_many({"name": "many"}, {"is_active": False}) == 20
    assert len(small) == len(large)
    rows = Product.objects.filter(pk__in=[p.pk for p in few + many])
    assert set(rows.values_list("is_active", "version")) == {(False, 2)}
    assert Product.objects.get(pk=untouched.pk).version == 1
    entries = AuditLog.objects.filter(action="updated")
    assert entries.count() == 22
    assert {tuple(e.changes) for e in entries} == {("is_active",)}


def test_update_many_deduplicates_rows_joined_through_filters():
    category = CategoryFactory.create(name="Tools")
    ProductFactory.create_batch(3, category=category)
    assert SampleProductRepository().update_many({"category_name": "tools"}, {"name": "t"}) == 3


def test_update_many_returns_zero_when_nothing_matches():
    ProductFactory.create()
    assert SampleProductRepository().update_many({"name": "nothing"}, {"name": "x"}) == 0
    assert not AuditLog.objects.exists()


def test_update_many_rejects_bad_filters_and_data():
    repository = SampleProductRepository()
    with pytest.raises(InvalidQueryError):
        repository.update_many({"bogus": 1}, {"name": "x"})
    with pytest.raises(ValidationError):
        repository.update_many({}, {"price": "x"})


def test_delete_many_removes_matching_rows_with_constant_queries_and_snapshots():
    repository = SampleProductRepository()
    ProductFactory.create_batch(2, name="few")
    ProductFactory.create_batch(15, name="many")
    keep = ProductFactory.create(name="keep")
    with CaptureQueriesContext(connection) as small:
        assert repository.delete_many({"name": "few"}) == 2
    with CaptureQueriesContext(connection) as large:
        assert repository.delete_many({"name": "many"}) == 15
    assert len(small) == len(large)
    assert list(Product.all_objects.all()) == [keep]
    entries = AuditLog.objects.filter(action="deleted")
    assert entries.count() == 17
    assert all(e.changes["name"] in {"few", "many"} for e in entries)


def test_delete_many_skips_soft_deleted_rows_unless_asked():
    ProductFactory.create(name="gone", deleted=True)
    repository = SampleProductRepository()
    assert repository.delete_many({"name": "gone"}) == 0
    assert repository.delete_many({"name": "gone"}, include_deleted=True) == 1


# --- delete, soft delete, restore ----------------------------------------------------------


def test_delete_removes_row_and_audits_snapshot():
    product = ProductFactory.create(sku="GONE")
    SampleProductRepository().delete(product.pk)
    assert not Product.all_objects.filter(pk=product.pk).exists()
    [entry] = audit_rows(product.pk, "deleted")
    assert entry.changes["sku"] == "GONE"


def test_delete_purges_a_soft_deleted_row():
    product = ProductFactory.create(deleted=True)
    SampleProductRepository().delete(product.pk)
    assert not Product.all_objects.filter(pk=product.pk).exists()


def test_delete_cascades_like_django():
    order = OrderFactory.create()
    order.status_history.create(to_status="pending")
    SampleOrderRepository().delete(order.pk)
    assert not Order.objects.filter(pk=order.pk).exists()


def test_delete_raises_validation_error_when_row_is_protected():
    product = ProductFactory.with_stock(3)
    with pytest.raises(ValidationError) as caught:
        SampleProductRepository().delete(product.pk)
    assert "__all__" in caught.value.errors
    assert InventoryMovement.objects.filter(product=product).exists()
    assert Product.objects.filter(pk=product.pk).exists()


@pytest.mark.parametrize("key", [uuid.UUID(int=9), "nope"])
def test_delete_raises_not_found_for_unknown_key(key):
    with pytest.raises(NotFoundError):
        SampleProductRepository().delete(key)


def test_soft_delete_hides_row_and_audits():
    product = ProductFactory.create()
    repository = SampleProductRepository()
    deleted = repository.soft_delete(product.pk)
    assert deleted.deleted_at is not None
    assert deleted.version == 2
    assert repository.find_by_id(product.pk) is None
    assert Product.all_objects.get(pk=product.pk).is_deleted
    [entry] = audit_rows(product.pk, "soft_deleted")
    assert entry.changes["deleted_at"]["old"] is None


def test_soft_delete_raises_not_found_when_already_deleted():
    product = ProductFactory.create(deleted=True)
    with pytest.raises(NotFoundError):
        SampleProductRepository().soft_delete(product.pk)


def test_restore_makes_row_live_and_audits():
    product = ProductFactory.create(deleted=True)
    restored = SampleProductRepository().restore(product.pk)
    assert restored.deleted_at is None
    assert SampleProductRepository().find_by_id(product.pk) == product
    assert len(audit_rows(product.pk, "restored")) == 1


def test_restore_of_live_row_returns_it_without_audit():
    product = ProductFactory.create()
    assert SampleProductRepository().restore(product.pk) == product
    assert audit_rows(product.pk) == []


def test_restore_raises_not_found_for_unknown_key():
    with pytest.raises(NotFoundError):
        SampleProductRepository().restore(uuid.uuid4())


def test_restore_raises_conflict_with_deleted_row_flag_when_sku_is_taken():
    old = ProductFactory.create(sku="SAME", deleted=True)
    ProductFactory.create(sku="SAME")
    with pytest.raises(ConflictError) as caught:
        SampleProductRepository().restore(old.pk)
    error = caught.value
    assert error.with_deleted_row is True
    assert error.fields == ("sku",)
    assert "live product" in str(error)
    assert Product.all_objects.get(pk=old.pk).is_deleted


def test_soft_delete_and_restore_refuse_models_without_deleted_at():
    order = OrderFactory.create()
    repository = SampleOrderRepository()
    with pytest.raises(ValidationError, match="soft-deleted"):
        repository.soft_delete(order.pk)
    with pytest.raises(ValidationError, match="soft-deleted"):
        repository.restore(order.pk)


def test_update_of_order_bumps_version_without_soft_delete_columns():
    order = OrderFactory.create()
    updated = SampleOrderRepository().update(order.pk, {"status": "paid"}, expected_version=1)
    assert (updated.status, updated.version) == ("paid", 2)
    assert updated.user.pk == order.user_id


def test_update_rejects_invalid_choice():
    order = OrderFactory.create()
    with pytest.raises(ValidationError) as caught:
        SampleOrderRepository().update(order.pk, {"status": "lost"})
    assert "status" in caught.value.errors


def test_repository_without_filterset_rejects_every_filter():
    OrderFactory.create()
    with pytest.raises(InvalidQueryError) as caught:
        SampleOrderRepository().find_many({"status": "pending"})
    assert "status" in caught.value.errors
    assert SampleOrderRepository().count({}) == 1


# --- instrumentation -----------------------------------------------------------------------


def test_public_methods_label_their_queries():
    ProductFactory.create()
    with CaptureQueriesContext(connection) as captured:
        SampleProductRepository().find_many()
        SampleProductRepository().count()
    assert captured[0]["sql"].startswith("/* repo:SampleProductRepository.find_many */")
    assert captured[1]["sql"].startswith("/* repo:SampleProductRepository.count */")


def test_outermost_method_label_wins_for_inner_base_calls():
    ProductFactory.create()
    with CaptureQueriesContext(connection) as captured:
        SampleProductRepository().find_cheapest()
    assert captured[0]["sql"].startswith("/* repo:SampleProductRepository.find_cheapest */")


def test_writes_label_every_statement_including_audit():
    with CaptureQueriesContext(connection) as captured:
        SampleProductRepository().create(product_data())
    labelled = [q["sql"] for q in captured if "SAVEPOINT" not in q["sql"]]
    assert labelled
    assert all(sql.startswith("/* repo:SampleProductRepository.create */") for sql in labelled)


def test_labelled_methods_keep_their_name_docstring_and_original():
    method = SampleProductRepository.find_cheapest
    assert method.__name__ == "find_cheapest"
    assert (method.__doc__ or "").startswith("A domain verb")
    assert method.__wrapped__.__name__ == "find_cheapest"  # type: ignore[attr-defined]
    assert BaseRepository.find_many.__name__ == "find_many"


def test_get_queryset_is_a_plain_hook():
    assert not hasattr(BaseRepository.get_queryset, "__wrapped__")
    queryset = SampleProductRepository().get_queryset(include_deleted=True)
    assert queryset.query.select_related == {"category": {}}


def test_atomic_write_inside_caller_transaction_rolls_back_with_it():
    repository = SampleProductRepository()
    with pytest.raises(RuntimeError), transaction.atomic():
        repository.create(product_data())
        raise RuntimeError
    assert not Product.objects.exists()
    assert not AuditLog.objects.exists()


def test_config_repository_update_with_json_value():
    config = SystemConfigFactory.create(key="flags", value={"a": 1})
    updated = SampleConfigRepository().update(config.pk, {"value": {"a": 2}}, expected_version=1)
    assert updated.value == {"a": 2}
    [entry] = audit_rows(config.pk, "updated")
    assert entry.changes == {"value": {"old": {"a": 1}, "new": {"a": 2}}}
    assert SystemConfig.objects.get(pk=config.pk).version == 2
    assert Category.objects.count() == 0


def test_update_rejects_value_its_field_cannot_parse():
    order = OrderFactory.create()
    with pytest.raises(ValidationError) as caught:
        SampleOrderRepository().update(order.pk, {"placed_at": 12345})
    assert list(caught.value.errors) == ["placed_at"]


@pytest.mark.parametrize("key", [2**70, "abc", -1])
def test_find_by_id_on_bigint_keys_returns_none_for_out_of_range_or_malformed(key):
    AuditLogFactory.create()
    assert SampleAuditLogRepository().find_by_id(key) is None


def test_writes_return_the_row_even_when_get_queryset_hides_it():
    repository = SampleActiveProductRepository()
    created = repository.create(product_data(is_active=False))
    assert created.pk and created.is_active is False
    assert repository.find_by_id(created.pk) is None
    updated = repository.update(created.pk, {"name": "Hidden"}, expected_version=1)
    assert (updated.name, updated.version) == ("Hidden", 2)
    deleted = repository.soft_delete(created.pk)
    assert deleted.deleted_at is not None
    assert deleted.version == 3
    restored = repository.restore(created.pk)
    assert restored.deleted_at is None
    assert restored.version == 4
    assert Product.all_objects.get(pk=created.pk).version == 4


def test_package_exports_the_public_names_lazily():
    import repositories
    from repositories.core.pagination import Page

    assert repositories.Page is Page
    assert repositories.BaseRepository is BaseRepository
    assert "StrictFilterSet" in dir(repositories)
    with pytest.raises(AttributeError):
        repositories.Nope  # noqa: B018


def test_counts_and_bulk_writes_see_the_rows_get_queryset_shows():
    ProductFactory.create(name="on", is_active=True)
    hidden = ProductFactory.create(name="off", is_active=False)
    repository = SampleActiveProductRepository()
    assert repository.count() == len(repository.find_many()) == 1
    assert repository.exists({"name": "off"}) is False
    assert repository.update_many({}, {"description": "x"}) == 1
    assert repository.delete_many({}) == 1
    assert Product.objects.get().pk == hidden.pk


def test_bulk_statements_skip_the_generated_search_vector():
    ProductFactory.create(name="lamp")
    with CaptureQueriesContext(connection) as captured:
        SampleProductRepository().update_many({"name": "lamp"}, {"name": "lamp 2"})
        SampleProductRepository().delete_many({"name": "lamp"})
    assert not any("search_vector" in q["sql"] for q in captured)


@pytest.mark.django_db(transaction=True)
def test_create_outside_any_transaction_reports_dangling_key_at_its_own_commit():
    with pytest.raises(ValidationError) as caught:
        SampleProductRepository().create(product_data(category_id=uuid.uuid4()))
    assert "category" in caught.value.errors
    assert not Product.objects.exists()
    assert not AuditLog.objects.exists()


def test_update_many_can_move_rows_to_another_category():
    old, new = CategoryFactory.create_batch(2)
    ProductFactory.create_batch(3, category=old, name="mv")
    assert SampleProductRepository().update_many({"name": "mv"}, {"category": new}) == 3
    assert set(Product.objects.values_list("category_id", flat=True)) == {new.pk}
    changes = AuditLog.objects.filter(action="updated").values_list("changes", flat=True)
    assert {c["category_id"]["new"] for c in changes} == {str(new.pk)}


def test_decimal_values_are_kept_at_the_column_scale():
    created = SampleProductRepository().create_many([product_data(price=5)])
    assert str(created[0].price) == "5.00"
    [entry] = audit_rows(created[0].pk, "created")
    assert entry.changes["price"] == "5.00"
    product = ProductFactory.create(price=Decimal("5.00"))
    SampleProductRepository().update(product.pk, {"price": 5, "name": "same price"})
    [update] = audit_rows(product.pk, "updated")
    assert "price" not in update.changes
