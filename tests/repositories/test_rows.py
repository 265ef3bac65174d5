"""The hand-written keyset path of BaseRepository.paginate_cursor and SelectPlan."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, models
from django.test.utils import CaptureQueriesContext

from domain.models import Category, Order, Product
from repositories.errors import InvalidQueryError
from repositories.rows import SelectPlan
from tests.factories import CategoryFactory, OrderFactory, ProductFactory, UserFactory
from tests.repositories.sample_repositories import (
    SampleActiveProductRepository,
    SampleCategoryRepository,
    SampleChildCategoryRepository,
    SampleConfigRepository,
    SampleOrderRepository,
    SampleProductRepository,
)

pytestmark = pytest.mark.django_db


def _walk(pager: Any, limit: int = 2) -> list[Any]:
    seen: list[Any] = []
    after = None
    while True:
        page = pager(after, limit)
        seen.extend(page.items)
        if not page.has_next:
            return seen
        after = page.next_cursor


def _values(instance: models.Model) -> dict[str, Any]:
    deferred = instance.get_deferred_fields()
    return {
        f.attname: getattr(instance, f.attname)
        for f in instance._meta.concrete_fields
        if f.attname not in deferred
    }


def _assert_same(direct: list[Any], orm: list[Any], relation: str) -> None:
    assert [row.pk for row in direct] == [row.pk for row in orm]
    field = type(direct[0])._meta.get_field(relation)
    for mine, theirs in zip(direct, orm, strict=True):
        assert not mine._state.adding
        assert mine._state.db == theirs._state.db
        assert mine.get_deferred_fields() == theirs.get_deferred_fields()
        assert _values(mine) == _values(theirs)
        assert field.is_cached(mine)
        related, expected = getattr(mine, relation), getattr(theirs, relation)
        assert (related is None) == (expected is None)
        if related is not None:
            assert _values(related) == _values(expected)


@pytest.fixture
def tree() -> list[Category]:
    root = CategoryFactory.create(name="B root")
    other = CategoryFactory.create(name="A root")
    rows = [root, other]
    for n in range(6):
        rows.append(CategoryFactory.create(name=f"Child {n % 2}", parent=root if n % 3 else other))
    gone = CategoryFactory.create(name="Gone parent")
    rows.append(CategoryFactory.create(name="Orphaned child", parent=gone))
    gone.deleted_at = gone.created_at
    gone.save()  # a soft-deleted parent is still joined, as select_related does
    CategoryFactory.create(name="Child 0", deleted=True)
    return rows


@pytest.mark.parametrize("order_by", [None, ["name"], ["-slug"], ["created_at"]])
def test_paginate_cursor_direct_path_matches_orm_for_nullable_foreign_key(tree, order_by):
    repository = SampleChildCategoryRepository()
    direct = _walk(
        lambda after, n: repository.paginate_cursor(order_by=order_by, after=after, limit=n)
    )
    orm = _walk(
        lambda after, n: repository.paginate_cursor(
            {"name": "i"}, order_by=order_by, after=after, limit=n
        )
    )
    named = [c for c in direct if "i" in c.name.lower()]
    assert len(direct) == len(tree)  # live rows only: the deleted ones are hidden
    assert any(c.parent is None for c in direct)
    assert any(c.parent is not None and c.parent.deleted_at for c in direct)
    _assert_same(named, orm, "parent")
    assert (
        _walk(
            lambda after, n: repository.paginate_cursor(order_by=order_by, after=after, limit=n),
            100,
        )
        == direct
    )
    assert [c.pk for c in direct] == [c.pk for c in repository.find_many(order_by=order_by)]


def test_paginate_cursor_direct_path_pages_in_one_hand_written_query(
    tree, django_assert_num_queries
):
    repository = SampleChildCategoryRepository()
    first = repository.paginate_cursor(limit=3)
    with CaptureQueriesContext(connection) as captured:
        page = repository.paginate_cursor(after=first.next_cursor, limit=3)
        parents = [c.parent.name if c.parent else None for c in page.items]
    assert len(captured.captured_queries) == 1
    sql = captured.captured_queries[0]["sql"]
    assert 'LEFT OUTER JOIN "categories" t1' in sql
    assert 'ROW(t0."name", t0."id") >' in sql
    assert 't0."deleted_at" IS NULL' in sql
    assert len(parents) == 3


def test_paginate_cursor_direct_path_matches_orm_for_required_foreign_key():
    # Order: not soft-deletable (no live condition), a required user (inner join).
    for n in range(5):
        user = UserFactory.create()
        OrderFactory.create(user=user, total=Decimal(n % 2), placed_at=user.created_at)
    UserFactory.create()  # a user without orders is never joined in
    repository = SampleOrderRepository()
    with CaptureQueriesContext(connection) as captured:
        direct = _walk(lambda after, n: repository.paginate_cursor({}, after=after, limit=n))
    assert "INNER JOIN" in captured.captured_queries[0]["sql"]
    assert "WHERE" not in captured.captured_queries[0]["sql"]
    # No FilterSet here: find_many (the ORM, same select_related and order) is the reference.
    orm = repository.find_many()
    assert len(direct) == 5
    _assert_same(direct, orm, "user")
    for order in direct:
        assert Order.user.is_cached(order)


def test_paginate_cursor_cursors_work_across_direct_and_orm_paths(tree):
    repository = SampleChildCategoryRepository()
    first = repository.paginate_cursor(order_by=["-slug"], limit=3)
    # An empty filter value is no constraint: same fingerprint, ORM path.
    via_orm = repository.paginate_cursor(
        {"name": ""}, order_by=["-slug"], after=first.next_cursor, limit=3
    )
    direct = repository.paginate_cursor(order_by=["-slug"], after=first.next_cursor, limit=3)
    assert [c.pk for c in via_orm.items] == [c.pk for c in direct.items]
    assert via_orm.next_cursor == direct.next_cursor
    first_orm = repository.paginate_cursor({"name": ""}, order_by=["-slug"], limit=3)
    assert first_orm.next_cursor == first.next_cursor


@pytest.mark.parametrize(
    ("repository", "kwargs"),
    [
        (SampleCategoryRepository(), {}),  # prefetch_related
        (SampleActiveProductRepository(), {}),  # get_queryset overridden
        (SampleChildCategoryRepository(), {"filters": {"name": "child"}}),
        (SampleChildCategoryRepository(), {"include_deleted": True}),
        (SampleChildCategoryRepository(), {"order_by": ["-name", "slug"]}),  # mixed directions
        (SampleChildCategoryRepository(), {"order_by": ["parent_id"]}),  # nullable key
    ],
)
def test_paginate_cursor_falls_back_to_orm_when_sql_cannot_be_written(tree, repository, kwargs):
    ProductFactory.create(is_active=True)
    with CaptureQueriesContext(connection) as captured:
        page = repository.paginate_cursor(limit=2, **kwargs)
    assert page.items
    assert ' t0."' not in captured.captured_queries[0]["sql"]
    assert page.has_next == (page.next_cursor is not None)


def test_paginate_cursor_refuses_bad_limit_and_tampered_cursor_on_direct_path(tree):
    repository = SampleChildCategoryRepository()
    page = repository.paginate_cursor(limit=2)
    assert page.next_cursor is not None
    with pytest.raises(InvalidQueryError):
        repository.paginate_cursor(limit=0)
    with pytest.raises(InvalidQueryError):
        repository.paginate_cursor(order_by=["slug"], after=page.next_cursor, limit=2)
    with pytest.raises(InvalidQueryError):
        repository.paginate_cursor(after=page.next_cursor[:-3] + "xyz", limit=2)


def test_select_plan_is_built_only_for_base_queryset_with_forward_keys():
    assert SampleChildCategoryRepository()._spec.select_plan is not None
    assert SampleProductRepository()._spec.select_plan is not None
    assert SampleConfigRepository()._spec.select_plan is not None  # no join, no live rows
    assert SampleCategoryRepository()._spec.select_plan is None
    assert SampleActiveProductRepository()._spec.select_plan is None
    assert SelectPlan.for_model(Product, ["category__parent"]) is None
    assert SelectPlan.for_model(Product, ["name"]) is None
    assert SelectPlan.for_model(Product, ["nope"]) is None
    assert SelectPlan.for_model(Category, ["products"]) is None  # reverse relation


def test_select_plan_refuses_a_default_manager_that_filters_more(monkeypatch):
    assert SelectPlan.for_model(Order) is not None
    monkeypatch.setattr(Order._meta, "default_manager", Order.objects.filter(status="paid"))
    assert SelectPlan.for_model(Order) is None
    monkeypatch.setattr(Product._meta, "default_manager", Product.objects.filter(is_active=True))
    assert SelectPlan.for_model(Product) is None


def test_select_plan_leaves_deferred_fields_unloaded():
    product = ProductFactory.create()
    plan = SelectPlan.for_model(Product, ["category"], deferred=["search_vector"])
    assert plan is not None
    assert "search_vector" not in plan.columns
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {plan.columns}, 7 {plan.from_clause}")
        (built,) = plan.build("default", cursor.fetchall(), extra=["rank"])
    assert built.get_deferred_fields() == {"search_vector"}
    assert built.rank == 7
    assert _values(built) == _values(Product.objects.defer("search_vector").get(pk=product.pk))


def test_select_plan_leaves_deferred_fields_of_joined_models_unloaded():
    product = ProductFactory.create()
    plan = SelectPlan.for_model(Product, ["category"], deferred=["category__slug"])
    assert plan is not None
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {plan.columns} {plan.from_clause}")
        (built,) = plan.build("default", cursor.fetchall())
    expected = Product.objects.select_related("category").defer("category__slug")
    expected_product = expected.get(pk=product.pk)
    assert built.category.get_deferred_fields() == {"slug"}
    assert _values(built.category) == _values(expected_product.category)
    assert _values(built) == _values(expected_product)


def _built_products(using: str = "default") -> list[Product]:
    plan = SelectPlan.for_model(Product, ["category"], deferred=["search_vector"])
    assert plan is not None
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {plan.columns} {plan.from_clause} ORDER BY t0.sku")
        return plan.build(using, cursor.fetchall())


def test_select_plan_builds_instances_as_from_db_does():
    ProductFactory.create(category=None)
    ProductFactory.create()
    plan = SelectPlan.for_model(Product, ["category"], deferred=["search_vector"])
    assert plan is not None
    # Both models keep Django's constructor: the values go straight into __dict__.
    assert all(builder.plain for builder in plan._builders)
    loaded = Product.objects.select_related("category").defer("search_vector")
    references = {product.pk: product for product in loaded}
    for built in _built_products():
        reference = references[built.pk]
        assert type(built) is Product
        assert (built._state.adding, built._state.db) == (False, "default")
        assert built.get_deferred_fields() == reference.get_deferred_fields()
        assert _values(built) == _values(reference)
        # Unchanged when saved, like a loaded instance; the deferred field still loads.
        assert (built.category is None) == (reference.category is None)
    # Saved like a loaded instance (an UPDATE); a deferred field loads on access.
    built.name = "renamed"
    built.save(update_fields=["name"])
    assert Product.objects.get(pk=built.pk).name == "renamed"
    assert "'renam'" in built.search_vector


def test_select_plan_uses_from_db_when_init_signals_listen():
    ProductFactory.create()
    seen: list[Any] = []

    def listener(sender: Any, instance: Any, **kwargs: Any) -> None:
        seen.append((sender, instance.sku))

    models.signals.post_init.connect(listener, sender=Product)
    try:
        (built,) = [p for p in _built_products() if isinstance(p, Product)]
    finally:
        models.signals.post_init.disconnect(listener, sender=Product)
    assert (Product, built.sku) in seen


def test_select_plan_uses_from_db_for_models_with_their_own_init():
    class Custom(models.Model):
        name = models.CharField(max_length=10)

        class Meta:
            app_label = "domain"
            managed = False

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.extra = "set by __init__"

    plan = SelectPlan.for_model(Custom)
    assert plan is not None
    assert not plan._builders[0].plain
    (built,) = plan.build("default", [(1, "x")])
    assert (built.pk, built.name, built.extra) == (1, "x", "set by __init__")
