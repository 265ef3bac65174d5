"""CategoryRepository and ProductRepository: tree, moves, lookups, category listings, search."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.models import AuditLog, Category, Product
from repositories import CategoryNode, CategoryRepository, ProductRepository
from repositories.core.error_mapping import sqlstate_of
from repositories.errors import ConflictError, InvalidQueryError, NotFoundError, ValidationError
from repositories.search import build_search_query
from tests.factories import CategoryFactory, ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def categories() -> CategoryRepository:
    return CategoryRepository()


@pytest.fixture
def products() -> ProductRepository:
    return ProductRepository()


def _tree_fixture() -> dict[str, Category]:
    """shoes > running > trail; shoes > hiking; bags (root); a deleted root."""
    shoes = CategoryFactory.create(name="Shoes", slug="shoes")
    running = CategoryFactory.create(name="Running", slug="running", parent=shoes)
    trail = CategoryFactory.create(name="Trail", slug="trail", parent=running)
    hiking = CategoryFactory.create(name="Hiking", slug="hiking", parent=shoes)
    bags = CategoryFactory.create(name="Bags", slug="bags")
    CategoryFactory.create(name="Old", slug="old", deleted=True)
    return {"shoes": shoes, "running": running, "trail": trail, "hiking": hiking, "bags": bags}


# --- categories ------------------------------------------------------------------------


def test_tree_returns_sorted_forest_in_one_query(categories, django_assert_num_queries):
    _tree_fixture()
    with django_assert_num_queries(1):
        roots = categories.tree()
    assert [root.name for root in roots] == ["Bags", "Shoes"]
    shoes = roots[1]
    assert isinstance(shoes, CategoryNode)
    assert [child.name for child in shoes.children] == ["Hiking", "Running"]
    assert [node.name for node in shoes.walk()] == ["Shoes", "Hiking", "Running", "Trail"]
    assert [node.depth for node in shoes.walk()] == [0, 1, 1, 2]


def test_tree_query_count_is_constant_when_categories_grow(categories, django_assert_num_queries):
    parent = None
    for index in range(30):
        parent = CategoryFactory.create(name=f"Level {index:02d}", parent=parent)
    with django_assert_num_queries(1):
        roots = categories.tree()
    assert len(roots[0].walk()) == 30


def test_tree_shows_live_child_of_deleted_parent_as_root(categories):
    parent = CategoryFactory.create(name="Gone", slug="gone")
    CategoryFactory.create(name="Orphan", slug="orphan", parent=parent)
    Category.objects.filter(pk=parent.pk).soft_delete()
    assert [node.name for node in categories.tree()] == ["Orphan"]


def test_descendants_returns_live_subtree_breadth_first_in_one_query(
    categories, django_assert_num_queries
):
    tree = _tree_fixture()
    CategoryFactory.create(
        name="Deleted child", slug="deleted-child", parent=tree["hiking"], deleted=True
    )
    with django_assert_num_queries(1):
        found = categories.descendants(tree["shoes"].pk)
    assert [c.name for c in found] == ["Hiking", "Running", "Trail"]
    assert [c.depth for c in found] == [1, 1, 2]
    assert categories.descendants(str(tree["trail"].pk)) == []


def test_descendants_hides_subtree_of_deleted_category(categories):
    tree = _tree_fixture()
    Category.objects.filter(pk=tree["running"].pk).soft_delete()
    assert [c.name for c in categories.descendants(tree["shoes"].pk)] == ["Hiking"]


@pytest.mark.parametrize("key", ["not-a-uuid", 42, None])
def test_descendants_raises_not_found_when_id_is_malformed(categories, key):
    with pytest.raises(NotFoundError):
        categories.descendants(key)


def test_descendants_raises_not_found_when_category_is_unknown_or_deleted(categories):
    deleted = CategoryFactory.create(deleted=True)
    for key in (uuid.uuid4(), deleted.pk):
        with pytest.raises(NotFoundError):
            categories.descendants(key)


def test_move_changes_parent_and_records_audit(categories):
    tree = _tree_fixture()
    moved = categories.move(tree["trail"].pk, tree["bags"].pk)
    assert moved.parent_id == tree["bags"].pk
    assert Category.objects.get(pk=tree["trail"].pk).parent_id == tree["bags"].pk
    entry = AuditLog.objects.get(entity_type="category", entity_id=str(tree["trail"].pk))
    assert entry.action == "updated"
    assert entry.changes["parent_id"] == {
        "old": str(tree["running"].pk),
        "new": str(tree["bags"].pk),
    }


def test_move_to_none_makes_a_root(categories):
    tree = _tree_fixture()
    categories.move(tree["running"].pk, None)
    assert [node.name for node in categories.tree()] == ["Bags", "Running", "Shoes"]


def test_move_to_same_parent_writes_nothing(categories):
    tree = _tree_fixture()
    categories.move(tree["trail"].pk, tree["running"].pk)
    assert not AuditLog.objects.filter(entity_type="category").exists()


@pytest.mark.parametrize("target", ["shoes", "running", "trail"])
def test_move_refuses_cycle_with_validation_error(categories, target):
    tree = _tree_fixture()
    with pytest.raises(ValidationError) as info:
        categories.move(tree["shoes"].pk, tree[target].pk)
    assert "parent" in info.value.errors
    assert Category.objects.get(pk=tree["shoes"].pk).parent_id is None


def test_move_maps_database_cycle_trigger_to_validation_error(categories, monkeypatch):
    tree = _tree_fixture()
    # Skip the Python check so the categories_no_cycle trigger (23514) has to refuse.
    monkeypatch.setattr(CategoryRepository, "_would_cycle", lambda self, a, b: False)
    with pytest.raises(ValidationError) as info:
        categories.move(tree["shoes"].pk, tree["trail"].pk)
    assert "parent" in info.value.errors
    assert sqlstate_of(info.value) == "23514"


def test_move_raises_not_found_for_unknown_category_or_parent(categories):
    tree = _tree_fixture()
    deleted = CategoryFactory.create(deleted=True)
    with pytest.raises(NotFoundError):
        categories.move(uuid.uuid4(), tree["bags"].pk)
    with pytest.raises(NotFoundError):
        categories.move(tree["trail"].pk, deleted.pk)
    with pytest.raises(NotFoundError):
        categories.move(tree["trail"].pk, "nope")


def test_category_create_raises_conflict_when_slug_is_taken_by_live_row(categories):
    CategoryFactory.create(slug="shoes")
    with pytest.raises(ConflictError) as info:
        categories.create({"name": "Shoes again", "slug": "shoes"})
    assert "slug" in info.value.fields


def test_category_create_reuses_slug_of_deleted_row(categories):
    CategoryFactory.create(slug="shoes", deleted=True)
    created = categories.create({"name": "Shoes", "slug": "shoes"})
    assert created.slug == "shoes"


def test_category_find_many_filters_roots(categories, django_assert_num_queries):
    tree = _tree_fixture()
    with django_assert_num_queries(1):
        roots = categories.find_many({"is_root": True})
    assert [c.pk for c in roots] == [tree["bags"].pk, tree["shoes"].pk]
    with pytest.raises(InvalidQueryError):
        categories.find_many({"colour": "red"})


# --- products: lookups and listings ------------------------------------------------------


def test_find_by_sku_returns_live_product_only(products, django_assert_num_queries):
    live = ProductFactory.create(sku="ABC-1")
    ProductFactory.create(sku="DEL-1", deleted=True)
    with django_assert_num_queries(1):
        found = products.find_by_sku("ABC-1")
        assert found is not None
        assert found.category.name  # loaded with the product
    assert found.pk == live.pk
    assert products.find_by_sku("DEL-1") is None
    assert products.find_by_sku("missing") is None
    assert products.find_by_sku("") is None


def test_product_reads_never_load_search_vector(products):
    product = ProductFactory.create()
    loaded = products.get_by_id(product.pk)
    assert "search_vector" in loaded.get_deferred_fields()


def test_in_category_includes_descendants_in_one_query(products, django_assert_num_queries):
    tree = _tree_fixture()
    a = ProductFactory.create(name="A shoe", category=tree["shoes"])
    b = ProductFactory.create(name="B runner", category=tree["running"])
    c = ProductFactory.create(name="C trail", category=tree["trail"])
    ProductFactory.create(name="D bag", category=tree["bags"])
    ProductFactory.create(name="E deleted", category=tree["trail"], deleted=True)
    ProductFactory.create(name="F inactive", category=tree["trail"], is_active=False)
    with django_assert_num_queries(1):
        found = products.in_category(tree["shoes"].pk)
        names = [(p.name, p.category.slug) for p in found]
    assert [p.pk for p in found] == [a.pk, b.pk, c.pk]
    assert names[0] == ("A shoe", "shoes")
    assert [p.pk for p in products.in_category(tree["shoes"].pk, include_descendants=False)] == [
        a.pk
    ]
    with_inactive = products.in_category(tree["trail"].pk, include_inactive=True)
    assert [p.name for p in with_inactive] == ["C trail", "F inactive"]


def test_in_category_query_count_is_constant_when_products_grow(
    products, django_assert_num_queries
):
    tree = _tree_fixture()
    ProductFactory.create_batch(20, category=tree["trail"])
    with django_assert_num_queries(1):
        found = products.in_category(tree["shoes"].pk)
        [p.category.name for p in found]
    assert len(found) == 20


def test_in_category_skips_subtree_of_deleted_category(products):
    tree = _tree_fixture()
    ProductFactory.create(category=tree["trail"])
    Category.objects.filter(pk=tree["running"].pk).soft_delete()
    assert products.in_category(tree["shoes"].pk) == []
    assert products.in_category(tree["running"].pk, include_descendants=False) == []


def test_in_category_returns_empty_for_unknown_or_malformed_category(products):
    assert products.in_category(uuid.uuid4()) == []
    assert products.in_category("nope") == []


def test_product_create_raises_conflict_when_sku_is_taken(products):
    category = CategoryFactory.create()
    ProductFactory.create(sku="SKU-X")
    with pytest.raises(ConflictError) as info:
        products.create(
            {"sku": "SKU-X", "name": "Dup", "price": Decimal("1.00"), "category": category}
        )
    assert "sku" in info.value.fields


def test_product_create_raises_validation_error_on_negative_price(products):
    with pytest.raises(ValidationError):
        products.create({"sku": "NEG", "name": "Neg", "price": Decimal("-1.00")})


def test_product_find_many_sorts_and_filters(products, django_assert_num_queries):
    cheap = ProductFactory.create(price=Decimal("1.00"))
    dear = ProductFactory.create(price=Decimal("50.00"))
    ProductFactory.create(price=Decimal("20.00"), is_active=False)
    with django_assert_num_queries(1):
        found = products.find_many({"price_max": "30", "is_active": True}, order_by=["-price"])
        [p.category.name for p in found]
    assert [p.pk for p in found] == [cheap.pk]
    assert products.find_many(order_by=["-price"])[0].pk == dear.pk


# --- products: search --------------------------------------------------------------------


@pytest.fixture
def shop() -> dict[str, Product]:
    return {
        "running": ProductFactory.create(
            name="Running shoes", description="Light shoes for the road", sku="RUN-001"
        ),
        "trail": ProductFactory.create(
            name="Trail shoes", description="Grippy soles for running off-road", sku="TRL-002"
        ),
        "socks": ProductFactory.create(name="Wool socks", description="Warm socks", sku="SOX-003"),
        "red": ProductFactory.create(
            name="Red running shirt", description="Breathable", sku="SHR-004"
        ),
        "deleted": ProductFactory.create(name="Running shoes old", description="", deleted=True),
        "inactive": ProductFactory.create(
            name="Running shoes hidden", description="", is_active=False
        ),
    }


def test_search_finds_prefix_of_words_as_typed(products, shop):
    found = products.search("runn sho")
    assert found[0].pk == shop["running"].pk
    assert shop["deleted"].pk not in {p.pk for p in found}
    assert shop["inactive"].pk not in {p.pk for p in found}


def test_search_ranks_name_match_above_description_match(products, shop):
    found = products.search("running")
    ids = [p.pk for p in found]
    assert ids.index(shop["running"].pk) < ids.index(shop["trail"].pk)
    assert all(hasattr(p, "rank") and p.rank > 0 for p in found)
    assert [p.rank for p in found] == sorted((p.rank for p in found), reverse=True)


def test_search_understands_web_search_syntax(products, shop):
    assert {p.pk for p in products.search("running -shirt")} == {
        shop["running"].pk,
        shop["trail"].pk,
    }
    assert {p.pk for p in products.search("socks or shirt")} == {shop["socks"].pk, shop["red"].pk}
    assert [p.pk for p in products.search('"wool socks"')] == [shop["socks"].pk]
    assert products.search('"socks wool"') == []


def test_search_finds_by_sku(products, shop):
    assert [p.pk for p in products.search("SOX-003")] == [shop["socks"].pk]


def test_search_runs_one_query(products, shop, django_assert_num_queries):
    with django_assert_num_queries(1):
        found = products.search("shoes")
        [p.category.name for p in found]
    assert len(found) == 2


def test_search_applies_filters_and_validates_them(products, shop):
    shop["trail"].price = Decimal("99.00")
    shop["trail"].save()
    assert [p.pk for p in products.search("shoes", filters={"price_max": "50"})] == [
        shop["running"].pk
    ]
    with pytest.raises(InvalidQueryError):
        products.search("shoes", filters={"bogus": 1})


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "!!!",
        "a & b |",
        "'; drop table products; --",
        "\\",
        "(((",
        ":*",
        "-",
        '"',
        "or or",
        "the",
        "x:* & !y",
        "%s %(x)s",
    ],
)
def test_search_never_fails_on_hostile_input(products, shop, text):
    found = products.search(text)
    assert isinstance(found, list)
    assert Product.objects.count() == 5  # nothing dropped, nothing changed


def test_search_returns_empty_when_nothing_to_search(products, shop, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert products.search("!!! ???") == []


@pytest.mark.parametrize("limit", [0, -1, "5", 1.5, True])
def test_search_raises_invalid_query_on_bad_limit(products, limit):
    with pytest.raises(InvalidQueryError):
        products.search("shoes", limit=limit)


def test_search_raises_invalid_query_on_non_string_or_huge_text(products):
    with pytest.raises(InvalidQueryError):
        products.search(None)
    with pytest.raises(InvalidQueryError):
        products.search("shoe " * 100)


def test_search_caps_limit_at_max_page_size(products, settings):
    settings.REPOSITORIES = {**settings.REPOSITORIES, "MAX_PAGE_SIZE": 3}
    ProductFactory.create_batch(5, name="Blue kettle")
    assert len(products.search("kettle", limit=50)) == 3
    assert len(products.search("kettle", limit=2)) == 2


def test_build_search_query_binds_every_word_as_parameter():
    query = build_search_query("runn sho'; drop")
    assert query is not None
    assert "drop" not in query.sql and "runn" not in query.sql
    assert "runn:*" in query.params and "run" in query.params and "drop:*" in query.params
    assert build_search_query("!!! ---") is None


def test_search_uses_the_gin_index(products):
    category = CategoryFactory.create()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO products (sku, name, description, category_id, price)"
            " SELECT 'BULK-' || n, 'Bulk item ' || n, 'Filler text number ' || n, %s, 1"
            " FROM generate_series(1, 2000) AS n",
            [category.pk],
        )
        ProductFactory.create(name="Running shoes")
        # Rows inserted since the index was built sit in GIN's pending list, which the
        # planner prices as a scan; merge it as autovacuum would.
        cursor.execute("SELECT gin_clean_pending_list('products_search_gin'::regclass)")
        cursor.execute("ANALYZE products")
    with CaptureQueriesContext(connection) as captured:
        assert len(products.search("runn sho")) == 1
    sql = captured.captured_queries[-1]["sql"]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "products_search_gin" in plan
    assert "Bitmap Index Scan" in plan


def test_search_ignores_stop_words_like_websearch(products, shop):
    assert [p.pk for p in products.search("them wool socks")] == [shop["socks"].pk]
    assert [p.pk for p in products.search("the wool")] == [shop["socks"].pk]


@pytest.mark.parametrize("text", ["runn sho", "running", "running -shirt", "socks or shirt"])
def test_search_without_filters_matches_the_filtered_query(products, shop, text):
    # Without filters search() sends hand-written SQL and builds rows itself; with a
    # filter that every product passes it goes through the ORM: same rows, ranks, order.
    fast = products.search(text)
    orm = products.search(text, filters={"currency": "EUR"})
    assert fast
    assert [(p.pk, p.rank) for p in fast] == [(p.pk, p.rank) for p in orm]
    for mine, theirs in zip(fast, orm, strict=True):
        assert mine.get_deferred_fields() == theirs.get_deferred_fields() == {"search_vector"}
        assert not mine._state.adding
        assert mine._state.db == theirs._state.db
        assert Product.category.is_cached(mine)
        assert mine.category == theirs.category
        assert (mine.name, mine.price, mine.created_at) == (
            theirs.name,
            theirs.price,
            theirs.created_at,
        )


def test_search_without_filters_keeps_products_without_category(
    products, django_assert_num_queries
):
    orphan = ProductFactory.create(name="Orphan lamp", category=None)
    with django_assert_num_queries(1):
        found = products.search("lamp")
        assert [p.pk for p in found] == [orphan.pk]
        assert found[0].category is None


def test_product_find_by_id_loads_the_category_in_one_query(products, django_assert_num_queries):
    product = ProductFactory.create()
    orphan = ProductFactory.create(category=None)
    with CaptureQueriesContext(connection) as captured:
        found = products.find_by_id(product.pk)
        found_orphan = products.find_by_id(orphan.pk)
    assert (found, found_orphan) == (product, orphan)
    assert len(captured.captured_queries) == 2
    assert "JOIN" in captured.captured_queries[0]["sql"]
    assert found.get_deferred_fields() == {"search_vector"}
    with django_assert_num_queries(0):
        assert found.category == product.category
        assert found_orphan.category is None
    with django_assert_num_queries(0):
        assert products.find_by_id("not-a-key") is None
        assert products.find_by_id(None) is None


class ActiveProductRepository(ProductRepository):
    def get_queryset(self, *, include_deleted: bool = False):
        return super().get_queryset(include_deleted=include_deleted).filter(is_active=True)


def test_product_reads_honour_a_subclass_get_queryset(products):
    # The hand-written reads mirror the base get_queryset() (with search_vector in
    # deferred_fields); a subclass that narrows it must not be bypassed.
    hidden = ProductFactory.create(name="Hidden lamp", is_active=False)
    shown = ProductFactory.create(name="Shown lamp")
    repository = ActiveProductRepository()
    assert products.find_by_id(hidden.pk) == hidden
    assert repository.find_by_id(hidden.pk) is None
    assert repository.find_by_id(shown.pk) == shown
    assert [p.pk for p in repository.paginate_cursor(order_by=["name"]).items] == [shown.pk]
    assert len(products.paginate_cursor(order_by=["name"]).items) == 2


def test_product_find_by_id_hides_deleted_products(products):
    deleted = ProductFactory.create(deleted=True)
    assert products.find_by_id(deleted.pk) is None
    with pytest.raises(NotFoundError):
        products.get_by_id(str(deleted.pk))


@pytest.fixture
def listing() -> list[Product]:
    shared = CategoryFactory.create()
    rows = [
        ProductFactory.create(
            name=f"Item {n % 3}",  # repeated names: the key breaks ties
            price=Decimal(n % 4),
            category=None if n == 2 else shared,
            is_active=n != 5,  # inactive products are listed; only deleted ones hide
        )
        for n in range(9)
    ]
    ProductFactory.create(name="Item 0", deleted=True)
    return rows


def _walk(pager, limit: int = 2) -> list[Product]:
    seen: list[Product] = []
    after = None
    while True:
        page = pager(after, limit)
        seen.extend(page.items)
        if not page.has_next:
            return seen
        after = page.next_cursor


@pytest.mark.parametrize("order_by", [None, ["name"], ["-price"], ["created_at"], ["-sku"]])
def test_product_paginate_cursor_without_filters_matches_the_orm_path(products, listing, order_by):
    # No filters: BaseRepository's hand-written SQL (SelectPlan) and from_db. A filter
    # every product passes: the ORM.
    direct = _walk(
        lambda after, n: products.paginate_cursor(order_by=order_by, after=after, limit=n)
    )
    orm = _walk(
        lambda after, n: products.paginate_cursor(
            {"currency": "EUR"}, order_by=order_by, after=after, limit=n
        )
    )
    assert [p.pk for p in direct] == [p.pk for p in orm]
    assert len(direct) == len(listing)
    for mine, theirs in zip(direct, orm, strict=True):
        assert mine.get_deferred_fields() == theirs.get_deferred_fields() == {"search_vector"}
        assert Product.category.is_cached(mine)
        assert mine.category == theirs.category
        assert (mine.price, mine.created_at, mine.version) == (
            theirs.price,
            theirs.created_at,
            theirs.version,
        )


def test_product_paginate_cursor_pages_in_one_query_with_categories(
    products, listing, django_assert_num_queries
):
    with django_assert_num_queries(1):
        page = products.paginate_cursor(order_by=["name"], limit=4)
        names = [p.category.name if p.category else None for p in page.items]
    assert len(names) == 4
    assert page.has_next


def test_product_paginate_cursor_cursors_work_across_both_paths(products, listing):
    # An empty filter value is no constraint: same query, same fingerprint, ORM path.
    first = products.paginate_cursor(order_by=["-price"], limit=3)
    via_orm = products.paginate_cursor(
        {"name": ""}, order_by=["-price"], after=first.next_cursor, limit=3
    )
    direct = products.paginate_cursor(order_by=["-price"], after=first.next_cursor, limit=3)
    assert [p.pk for p in via_orm.items] == [p.pk for p in direct.items]
    assert via_orm.next_cursor == direct.next_cursor


def test_product_paginate_cursor_refuses_foreign_or_tampered_cursors(products, listing):
    page = products.paginate_cursor(order_by=["name"], limit=2)
    with pytest.raises(InvalidQueryError):
        products.paginate_cursor(order_by=["price"], after=page.next_cursor, limit=2)
    tampered = page.next_cursor[:-2] + ("AA" if page.next_cursor[-2:] != "AA" else "BB")
    with pytest.raises(InvalidQueryError):
        products.paginate_cursor(order_by=["name"], after=tampered, limit=2)
    with pytest.raises(InvalidQueryError):
        products.paginate_cursor(order_by=["description"], limit=2)
    with pytest.raises(InvalidQueryError):
        products.paginate_cursor(limit=0)


@pytest.mark.django_db(transaction=True)
def test_concurrent_crossing_moves_cannot_build_a_cycle():
    import threading

    a = CategoryFactory.create(name="A")
    b = CategoryFactory.create(name="B")
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def move(child: Category, parent: Category) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes.append(CategoryRepository().move(child.pk, parent.pk))
        except ValidationError as exc:
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=move, args=(a, b)),
        threading.Thread(target=move, args=(b, a)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(type(o).__name__ for o in outcomes) == ["Category", "ValidationError"]
    parents = dict(Category.objects.values_list("name", "parent__name"))
    assert None in parents.values()  # one of them is still a root: no cycle


def test_repositories_accept_model_instances_as_ids(categories, products):
    tree = _tree_fixture()
    ProductFactory.create(category=tree["trail"])
    assert len(categories.descendants(tree["shoes"])) == 3
    assert len(products.in_category(tree["running"])) == 1


# --- search agrees with PostgreSQL's websearch_to_tsquery ------------------------------

#: Complete words none of whose stems is a prefix or a short truncation of another's,
#: so the prefix matching of search() adds nothing and the results must be equal.
_VOCABULARY = ["wool", "sock", "red", "shirt", "trail", "leather", "boot", "blue", "cotton"]


def test_search_excludes_a_negated_phrase_like_websearch(products):
    plain = ProductFactory.create(name="Blue shoes", description="Canvas")
    ProductFactory.create(name="Leather boots shoes", description="")
    assert [p.pk for p in products.search('shoes -"leather boots"')] == [plain.pk]


_word = st.sampled_from(_VOCABULARY)
_phrase = st.lists(_word, min_size=1, max_size=3).map(lambda ws: '"' + " ".join(ws) + '"')
_term = st.one_of(
    _word,
    _word.map(lambda w: f"-{w}"),
    _phrase,
    _phrase.map(lambda p: f"-{p}"),
)
_group = st.lists(_term, min_size=1, max_size=3).map(" ".join)
_query = st.lists(_group, min_size=1, max_size=3).map(" or ".join)


@pytest.fixture
def vocabulary_shop() -> list[Product]:
    import itertools

    names = [" ".join(combo) for combo in itertools.permutations(_VOCABULARY[:6], 2)]
    names += [" ".join(_VOCABULARY[i : i + 3]) for i in range(len(_VOCABULARY) - 2)]
    return [ProductFactory.create(name=name, description="") for name in names[:45]]


@settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=_query)
def test_search_returns_what_websearch_to_tsquery_returns(products, vocabulary_shop, text):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM products WHERE search_vector @@ websearch_to_tsquery('english', %s)"
            " AND deleted_at IS NULL AND is_active",
            [text],
        )
        expected = {row[0] for row in cursor.fetchall()}
    found = {p.pk for p in products.search(text, limit=100)}
    assert found == expected, text
