"""repositories.interfaces: every repository satisfies its Protocol, and the Protocols bite.

The typed assignments below are checked by mypy (`make lint`); the tests make the same
checks at runtime (parameter names and kinds) and run mypy on generated classes that
must be refused (missing method, keyword-only marker moved).
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from domain.models import AuditLog, Category, Order, Product, User, UserSession
from repositories import (
    AuditLogRepository,
    CategoryRepository,
    OrderRepository,
    ProductRepository,
    SessionRepository,
    SystemConfigRepository,
    UserRepository,
)
from repositories.core.base import BaseRepository
from repositories.interfaces import (
    IAuditLogRepository,
    ICategoryRepository,
    IOrderRepository,
    IProductRepository,
    IRepository,
    ISessionRepository,
    ISystemConfigRepository,
    IUserRepository,
    ModelT,
)
from tests.factories import CategoryFactory, ProductFactory, UserFactory
from tests.parity_app.models import Widget
from tests.parity_app.repositories import WidgetRepository

ROOT = Path(__file__).resolve().parents[2]

PROTOCOLS: list[tuple[type, type]] = [
    (IUserRepository, UserRepository),
    (ICategoryRepository, CategoryRepository),
    (IProductRepository, ProductRepository),
    (IOrderRepository, OrderRepository),
    (ISessionRepository, SessionRepository),
    (IAuditLogRepository, AuditLogRepository),
    (ISystemConfigRepository, SystemConfigRepository),
]


def test_every_repository_satisfies_its_protocol_under_mypy() -> None:
    # mypy checks these assignments; at runtime they only construct the repositories.
    users: IUserRepository = UserRepository()
    categories: ICategoryRepository = CategoryRepository()
    products: IProductRepository = ProductRepository()
    orders: IOrderRepository = OrderRepository()
    sessions: ISessionRepository = SessionRepository()
    audit_log: IAuditLogRepository = AuditLogRepository()
    config: ISystemConfigRepository = SystemConfigRepository()
    # The base contract, for commerce repositories and a model of another app (SPEC §9).
    # SystemConfigRepository is left out: its delete() takes a key (SPEC §6).
    base_products: IRepository[Product] = ProductRepository()
    base_users: IRepository[User] = UserRepository()
    base_categories: IRepository[Category] = CategoryRepository()
    base_orders: IRepository[Order] = OrderRepository()
    base_sessions: IRepository[UserSession] = SessionRepository()
    base_audit: IRepository[AuditLog] = AuditLogRepository()
    widgets: IRepository[Widget] = WidgetRepository()
    constructed = [users, categories, products, orders, sessions, audit_log, config]
    constructed += [base_products, base_users, base_categories, base_orders, base_sessions]
    constructed += [base_audit, widgets]
    assert all(isinstance(repository, BaseRepository) for repository in constructed)


def _protocol_methods(protocol: type) -> dict[str, Callable[..., Any]]:
    """Return the public methods a Protocol declares, its own overriding its bases'."""
    methods: dict[str, Callable[..., Any]] = {}
    for klass in reversed(protocol.__mro__):
        if getattr(klass, "_is_protocol", False) and klass.__module__.startswith("repositories"):
            methods.update(
                (name, value)
                for name, value in vars(klass).items()
                if inspect.isfunction(value) and not name.startswith("_")
            )
    return methods


def _shape(function: Callable[..., Any]) -> list[tuple[str, Any, bool]]:
    """Return (name, kind, has a default) per parameter: what a caller relies on."""
    return [
        (parameter.name, parameter.kind, parameter.default is not parameter.empty)
        for parameter in inspect.signature(function).parameters.values()
    ]


@pytest.mark.parametrize(("protocol", "repository_class"), PROTOCOLS)
def test_protocol_parameters_match_the_class_by_name_and_kind(
    protocol: type, repository_class: type
) -> None:
    # mypy ignores positional parameter names when matching a protocol, but a caller
    # passing `id=` by keyword does not: compare names, kinds and optionality too.
    methods = _protocol_methods(protocol)
    assert len(methods) >= 16
    mismatches = {
        name: (_shape(function), _shape(getattr(repository_class, name)))
        for name, function in methods.items()
        if _shape(function) != _shape(getattr(repository_class, name))
    }
    assert mismatches == {}


def test_base_protocol_lists_the_spec_methods() -> None:
    assert set(_protocol_methods(IRepository)) == {
        "find_by_id",
        "get_by_id",
        "find_many",
        "find_first",
        "create",
        "create_many",
        "update",
        "update_many",
        "delete",
        "delete_many",
        "soft_delete",
        "restore",
        "count",
        "exists",
        "paginate",
        "paginate_cursor",
    }


def cheapest(products: IProductRepository, category_id: UUID) -> Product | None:
    """A service written against the interface only."""
    found = products.in_category(category_id, include_descendants=False)
    return min(found, key=lambda product: (product.price, product.pk), default=None)


def newest(repository: IRepository[ModelT]) -> ModelT | None:
    """A generic service: the model type follows the repository passed in."""
    return repository.find_first(order_by=["-created_at"])


@pytest.mark.django_db
def test_service_typed_against_the_protocol_runs_with_the_real_repository() -> None:
    category = CategoryFactory.create()
    ProductFactory.create(category=category, price=Decimal("12.00"))
    low = ProductFactory.create(category=category, price=Decimal("3.50"))
    ProductFactory.create(category=category, price=Decimal("1.00"), is_active=False)

    assert cheapest(ProductRepository(), category.pk) == low
    assert cheapest(ProductRepository(), CategoryFactory.create().pk) is None


@pytest.mark.django_db
def test_generic_service_returns_the_repository_model() -> None:
    user = UserFactory.create()
    product = ProductFactory.create()

    found_user: User | None = newest(UserRepository())
    found_product: Product | None = newest(ProductRepository())

    assert (found_user, found_product) == (user, product)


def test_importing_the_interfaces_loads_no_models() -> None:
    code = (
        "import sys, repositories.interfaces; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'domain'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# --- mypy refuses classes that do not satisfy a protocol -------------------------------


def _methods_source(path: str, class_name: str) -> dict[str, ast.FunctionDef]:
    """Return the method definitions of a Protocol class in a source file."""
    tree = ast.parse((ROOT / path).read_text())
    found = next(
        node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == class_name
    )
    return {node.name: node for node in found.body if isinstance(node, ast.FunctionDef)}


def _render_class(name: str, methods: dict[str, ast.FunctionDef]) -> str:
    """Return a plain class with these signatures (ModelT read as Product) and no bodies."""
    body = []
    for method in methods.values():
        module = ast.fix_missing_locations(_AsProduct().visit(ast.parse(ast.unparse(method))))
        function = module.body[0]
        assert isinstance(function, ast.FunctionDef)
        function.body = [ast.Raise(exc=ast.Name("NotImplementedError"))]
        function.decorator_list = []
        body.append(textwrap.indent(ast.unparse(function), "    "))
    return f"class {name}:\n" + "\n\n".join(body) + "\n"


class _AsProduct(ast.NodeTransformer):
    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.Name("Product", node.ctx) if node.id == "ModelT" else node


def _product_protocol_methods() -> dict[str, ast.FunctionDef]:
    base = _methods_source("repositories/core/interfaces.py", "IRepository")
    return {**base, **_methods_source("repositories/interfaces.py", "IProductRepository")}


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_mypy_refuses_a_class_missing_a_method_or_moving_a_keyword_only_marker(
    tmp_path: Path,
) -> None:
    complete = _product_protocol_methods()
    in_category = ast.parse(ast.unparse(complete["in_category"])).body[0]
    assert isinstance(in_category, ast.FunctionDef)
    # include_descendants: positional-or-keyword in the protocol, keyword-only here.
    in_category.args.kwonlyargs.insert(0, in_category.args.args.pop())
    in_category.args.kw_defaults.insert(0, in_category.args.defaults.pop())
    classes = {
        "Complete": complete,
        "MissingRestock": {k: v for k, v in complete.items() if k != "restock"},
        "MissingPaginateCursor": {k: v for k, v in complete.items() if k != "paginate_cursor"},
        "KeywordOnly": {**complete, "in_category": in_category},
    }
    header = """\
from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from domain.models import InventoryMovement, Product
from repositories.core.pagination import CursorPage, Page
from repositories.interfaces import IProductRepository, IRepository
"""
    assignments = """\
complete: IProductRepository = Complete()
complete_base: IRepository[Product] = Complete()
missing: IProductRepository = MissingRestock()
missing_base: IRepository[Product] = MissingPaginateCursor()
moved: IProductRepository = KeywordOnly()
"""
    snippet = "\n\n".join(
        [header, *(_render_class(name, methods) for name, methods in classes.items()), assignments]
    )
    source = tmp_path / "snippet.py"
    source.write_text(snippet)
    line_of = {text.split(":")[0]: n for n, text in enumerate(snippet.splitlines(), 1)}

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "mypy_cache"),
            "--no-error-summary",
            str(source),
        ],
        cwd=ROOT,
        env={**os.environ, "MYPYPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )

    output = result.stdout + result.stderr
    messages: dict[int, list[str]] = {}
    for line in result.stdout.splitlines():
        _path, number, message = line.split(":", 2)
        messages.setdefault(int(number), []).append(message)
    assert sorted(messages) == [line_of["missing"], line_of["missing_base"], line_of["moved"]], (
        output
    )
    for variable, member in [
        ("missing", "restock"),
        ("missing_base", "paginate_cursor"),
        ("moved", "in_category"),
    ]:
        found = messages[line_of[variable]]
        assert "error: Incompatible types in assignment" in found[0], output
        assert any(member in message for message in found[1:]), output
