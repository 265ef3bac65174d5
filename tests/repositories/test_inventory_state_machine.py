"""A stateful property test of stock and orders against a plain-Python model (SPEC §3, §6).

Hypothesis drives ProductRepository (restock, adjust_stock) and OrderRepository
(place_order with and without idempotency keys, transition, cancel) through random
sequences. Every outcome, success or typed error, is compared with what the model
predicts, and after every step the database is checked in SQL: stock never below
zero, stock == sum of the ledger, order totals == sum of the line snapshots, sales
taken and cancellations returned exactly once, and the model's stock is the database's.

Each example runs inside its own savepoint, rolled back in `teardown`, and every check
is scoped to the rows the example created.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from repositories.errors import (
    InsufficientStockError,
    InvalidTransitionError,
    ValidationError,
)
from repositories.orders import OrderRepository
from repositories.products import ProductRepository
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

MACHINE_SETTINGS = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    database=None,
    # No "explain" phase: re-running the shrunk case many times costs minutes here,
    # and the printed steps already say what failed.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

PRODUCTS = 3
USERS = 2
PRICES = (Decimal("9.99"), Decimal("0.10"), Decimal("123.45"), Decimal("0.00"), Decimal("1.05"))
IDEMPOTENCY_KEYS = ("key-a", "key-b")

# The status graph as SPEC §3 states it, written out here rather than imported, so the
# model does not test the code against itself.
STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled", "refunded")
GRAPH = {
    "pending": {"paid", "cancelled"},
    "paid": {"shipped", "cancelled"},
    "shipped": {"delivered"},
    "delivered": {"refunded"},
    "cancelled": set(),
    "refunded": set(),
}
MANUAL_REASONS = {"initial", "restock", "adjustment"}
ALL_REASONS = ("adjustment", "restock", "initial", "sale", "cancellation", "bogus")

product_index = st.integers(min_value=0, max_value=PRODUCTS - 1)
user_index = st.integers(min_value=0, max_value=USERS - 1)
order_lines = st.lists(
    st.tuples(product_index, st.integers(min_value=1, max_value=5)),
    min_size=1,
    max_size=3,
    unique_by=lambda line: line[0],
)
idempotency_keys = st.one_of(st.none(), st.sampled_from(IDEMPOTENCY_KEYS))


@dataclass
class ModelOrder:
    user: int
    lines: dict[int, int]  # product index -> quantity
    status: str
    version: int
    #: (from_status, to_status) of every transition, the first one (None, "pending")
    history: list[tuple[str | None, str]]


class InventoryMachine(RuleBasedStateMachine):
    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        # One savepoint per example inside the test's transaction: the next example
        # starts from the same database. Repository blocks nest inside it as savepoints.
        self._block = transaction.atomic()
        self._block.__enter__()
        self.product_repository = ProductRepository()
        self.order_repository = OrderRepository()
        self.product_ids: list[uuid.UUID] = []
        self.prices: list[Decimal] = []
        self.stock: list[int] = []
        self.user_ids: list[uuid.UUID] = []
        self.model_orders: dict[uuid.UUID, ModelOrder] = {}
        self.keyed: dict[tuple[int, str], uuid.UUID] = {}

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._block.__exit__(None, None, None)

    # --- set-up ------------------------------------------------------------------------

    @initialize(
        stocks=st.lists(st.integers(0, 25), min_size=PRODUCTS, max_size=PRODUCTS),
        prices=st.lists(st.sampled_from(PRICES), min_size=PRODUCTS, max_size=PRODUCTS),
    )
    def create_rows(self, stocks: list[int], prices: list[Decimal]) -> None:
        for stock, price in zip(stocks, prices, strict=True):
            product = ProductFactory.with_stock(stock, price=price)
            self.product_ids.append(product.pk)
            self.prices.append(price)
            self.stock.append(stock)
        self.user_ids = [user.pk for user in UserFactory.create_batch(USERS)]

    # --- stock -------------------------------------------------------------------------

    @rule(product=product_index, quantity=st.integers(1, 10))
    def restock(self, product: int, quantity: int) -> None:
        new_stock = self.product_repository.restock(self.product_ids[product], quantity)
        self.stock[product] += quantity
        assert new_stock == self.stock[product]

    @rule(
        product=product_index,
        delta=st.integers(-12, 8).filter(bool),
        reason=st.sampled_from(sorted(MANUAL_REASONS)),
    )
    def adjust_stock(self, product: int, delta: int, reason: str) -> None:
        """Any delta, any manual reason: below zero is refused and changes nothing."""
        product_id = self.product_ids[product]
        if self.stock[product] + delta < 0:
            with pytest.raises(InsufficientStockError) as caught:
                self.product_repository.adjust_stock(product_id, delta, reason=reason)
            assert caught.value.requested == -delta
            assert caught.value.available == self.stock[product]
            return
        new_stock = self.product_repository.adjust_stock(product_id, delta, reason=reason)
        self.stock[product] += delta
        assert new_stock == self.stock[product]

    # --- orders ------------------------------------------------------------------------

    @rule(target=orders, user=user_index, lines=order_lines, key=idempotency_keys)
    def place_order(self, user: int, lines: list[tuple[int, int]], key: str | None) -> Any:
        items = [(self.product_ids[product], quantity) for product, quantity in lines]
        replayed = self.keyed.get((user, key)) if key is not None else None
        if replayed is not None:
            # The first order comes back, whatever the lines and the stock now.
            order = self.order_repository.place_order(
                self.user_ids[user], items, idempotency_key=key
            )
            assert order.pk == replayed
            return multiple()
        short = [(product, qty) for product, qty in lines if self.stock[product] < qty]
        if short:
            with pytest.raises(InsufficientStockError) as caught:
                self.order_repository.place_order(self.user_ids[user], items, idempotency_key=key)
            shorts = {self.product_ids[product]: qty for product, qty in short}
            assert caught.value.product_id in shorts
            assert caught.value.requested == shorts[caught.value.product_id]
            return multiple()
        order = self.order_repository.place_order(self.user_ids[user], items, idempotency_key=key)
        assert order.pk not in self.model_orders
        assert order.status == "pending"
        assert order.user_id == self.user_ids[user]
        assert order.idempotency_key == key
        for product, quantity in lines:
            self.stock[product] -= quantity
        self.model_orders[order.pk] = ModelOrder(
            user=user,
            lines=dict(lines),
            status="pending",
            version=order.version,
            history=[(None, "pending")],
        )
        if key is not None:
            self.keyed[(user, key)] = order.pk
        return order.pk

    @precondition(lambda self: bool(self.keyed))
    @rule(data=st.data(), lines=order_lines)
    def replay_idempotency_key(self, data: st.DataObject, lines: list[tuple[int, int]]) -> None:
        """A key already used by its user: the same order back, whatever the lines ask."""
        user, key = data.draw(st.sampled_from(sorted(self.keyed)), label="user, key")
        items = [(self.product_ids[product], quantity) for product, quantity in lines]
        order = self.order_repository.place_order(self.user_ids[user], items, idempotency_key=key)
        assert order.pk == self.keyed[(user, key)]

    @rule(
        product=product_index,
        quantity=st.integers(-2, 0),
        delta=st.integers(-3, 3),
        reason=st.sampled_from(ALL_REASONS),
        user=user_index,
        lines=st.lists(
            st.tuples(product_index, st.integers(min_value=-1, max_value=5)),
            min_size=2,
            max_size=3,
        ).filter(
            lambda lines: len({p for p, _ in lines}) < len(lines) or any(q < 1 for _, q in lines)
        ),
        key=idempotency_keys,
    )
    def refused_requests(
        self,
        product: int,
        quantity: int,
        delta: int,
        reason: str,
        user: int,
        lines: list[tuple[int, int]],
        key: str | None,
    ) -> None:
        """Bad input is a ValidationError that changes nothing (the invariants check that).

        restock of a non-positive quantity; adjust_stock by 0 or for an order's reason;
        an order naming a product twice or a quantity below 1, replayed key or not.
        """
        product_id = self.product_ids[product]
        with pytest.raises(ValidationError):
            self.product_repository.restock(product_id, quantity)
        if delta != 0 and reason in MANUAL_REASONS:
            delta = 0
        with pytest.raises(ValidationError):
            self.product_repository.adjust_stock(product_id, delta, reason=reason)
        items = [(self.product_ids[product], quantity) for product, quantity in lines]
        with pytest.raises(ValidationError):
            self.order_repository.place_order(self.user_ids[user], items, idempotency_key=key)

    def _change_status(self, order_id: uuid.UUID, to_status: str, *, via_cancel: bool) -> None:
        model = self.model_orders[order_id]
        if to_status not in GRAPH[model.status]:
            with pytest.raises(InvalidTransitionError) as caught:
                if via_cancel:
                    self.order_repository.cancel(order_id)
                else:
                    self.order_repository.transition(order_id, to_status)
            assert caught.value.from_status == model.status
            assert caught.value.to_status == to_status
            return
        if via_cancel:
            order = self.order_repository.cancel(order_id, note="state machine")
        else:
            order = self.order_repository.transition(order_id, to_status, note="state machine")
        assert order.pk == order_id
        assert order.status == to_status
        assert order.version == model.version + 1
        model.history.append((model.status, to_status))
        model.status = to_status
        model.version += 1
        if to_status == "cancelled":
            for product, quantity in model.lines.items():
                self.stock[product] += quantity

    @rule(order=orders, to_status=st.sampled_from((*STATUSES, "bogus")))
    def transition(self, order: uuid.UUID, to_status: str) -> None:
        if to_status not in STATUSES:
            with pytest.raises(ValidationError):
                self.order_repository.transition(order, to_status)
            return
        self._change_status(order, to_status, via_cancel=False)

    @precondition(lambda self: any(GRAPH[o.status] for o in self.model_orders.values()))
    @rule(data=st.data())
    def advance(self, data: st.DataObject) -> None:
        """Move an open order along an allowed edge, so deep paths (shipped, refunded) happen."""
        open_orders = [key for key, order in self.model_orders.items() if GRAPH[order.status]]
        index = data.draw(st.integers(0, len(open_orders) - 1), label="open order index")
        order_id = open_orders[index]
        status = self.model_orders[order_id].status
        to_status = data.draw(st.sampled_from(sorted(GRAPH[status])), label="to_status")
        self._change_status(order_id, to_status, via_cancel=False)

    @rule(order=orders)
    def cancel(self, order: uuid.UUID) -> None:
        self._change_status(order, "cancelled", via_cancel=True)

    # --- invariants, in SQL, after every step -------------------------------------------

    def _rows(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    @invariant()
    @precondition(lambda self: bool(self.product_ids))
    def stock_matches_ledger_and_model(self) -> None:
        rows = self._rows(
            "SELECT p.id, p.stock_quantity, COALESCE(SUM(m.delta), 0)"
            " FROM products p LEFT JOIN inventory_movements m ON m.product_id = p.id"
            " WHERE p.id = ANY(%s::uuid[]) GROUP BY p.id",
            [self.product_ids],
        )
        found = {row[0]: (row[1], int(row[2])) for row in rows}
        assert set(found) == set(self.product_ids)
        for index, product_id in enumerate(self.product_ids):
            stock, ledger = found[product_id]
            assert stock >= 0, (index, stock)
            assert stock == ledger, f"product {index}: stock {stock} != ledger sum {ledger}"
            assert stock == self.stock[index], (
                f"product {index}: database stock {stock}, model {self.stock[index]}"
            )

    @invariant()
    @precondition(lambda self: bool(self.product_ids))
    def orders_match_their_lines(self) -> None:
        orders = self._rows(
            "SELECT id, user_id, status, subtotal, total FROM orders"
            " WHERE user_id = ANY(%s::uuid[])",
            [self.user_ids],
        )
        assert {row[0] for row in orders} == set(self.model_orders), "orders differ from model"
        items = self._rows(
            "SELECT order_id, product_id, unit_price, quantity, line_total FROM order_items"
            " WHERE order_id = ANY(%s::uuid[])",
            [list(self.model_orders)],
        )
        lines: dict[uuid.UUID, dict[uuid.UUID, tuple[Decimal, int, Decimal]]] = {}
        for order_id, product_id, unit_price, quantity, line_total in items:
            assert product_id not in lines.setdefault(order_id, {}), "one row per product"
            lines[order_id][product_id] = (unit_price, quantity, line_total)
        for order_id, user_id, status, subtotal, total in orders:
            model = self.model_orders[order_id]
            assert user_id == self.user_ids[model.user]
            assert status == model.status, (order_id, status, model.status)
            expected = {
                self.product_ids[product]: (self.prices[product], quantity)
                for product, quantity in model.lines.items()
            }
            got = lines.get(order_id, {})
            assert {pid: (price, qty) for pid, (price, qty, _) in got.items()} == expected
            for unit_price, quantity, line_total in got.values():
                assert line_total == unit_price * quantity
            line_sum = sum((line_total for _, _, line_total in got.values()), Decimal("0"))
            assert subtotal == line_sum, (order_id, subtotal, line_sum)
            assert total == subtotal, (order_id, total, subtotal)

    @invariant()
    @precondition(lambda self: bool(self.product_ids))
    def sales_taken_and_cancellations_returned_exactly_once(self) -> None:
        rows = self._rows(
            "SELECT order_id, product_id, reason, SUM(delta), COUNT(*) FROM inventory_movements"
            " WHERE product_id = ANY(%s::uuid[]) GROUP BY order_id, product_id, reason",
            [self.product_ids],
        )
        got: dict[tuple[uuid.UUID | None, uuid.UUID, str], tuple[int, int]] = {
            (order_id, product_id, reason): (int(total), count)
            for order_id, product_id, reason, total, count in rows
        }
        for (order_id, _, reason), _ in got.items():
            if order_id is None:
                assert reason in MANUAL_REASONS, reason
            else:
                assert reason in {"sale", "cancellation"}, reason
        expected: dict[tuple[uuid.UUID, uuid.UUID, str], tuple[int, int]] = {}
        for order_id, model in self.model_orders.items():
            for product, quantity in model.lines.items():
                expected[(order_id, self.product_ids[product], "sale")] = (-quantity, 1)
                if model.status == "cancelled":
                    expected[(order_id, self.product_ids[product], "cancellation")] = (quantity, 1)
        by_order = {key: value for key, value in got.items() if key[0] is not None}
        assert by_order == expected

    @invariant()
    @precondition(lambda self: bool(self.product_ids))
    def one_history_row_per_transition(self) -> None:
        if not self.model_orders:
            return
        rows = self._rows(
            "SELECT order_id, from_status, to_status FROM order_status_history"
            " WHERE order_id = ANY(%s::uuid[])",
            [list(self.model_orders)],
        )
        found: dict[uuid.UUID, list[tuple[str | None, str]]] = {}
        for order_id, from_status, to_status in rows:
            found.setdefault(order_id, []).append((from_status, to_status))
        for order_id, model in self.model_orders.items():
            assert sorted(found.get(order_id, []), key=str) == sorted(model.history, key=str)


# A passing run takes seconds; a failing one also shrinks the sequence, which on a loaded
# machine can take minutes: give it the time rather than a timeout instead of the case.
@pytest.mark.timeout(600)
def test_inventory_and_orders_follow_the_model() -> None:
    run_state_machine_as_test(InventoryMachine, settings=MACHINE_SETTINGS)
