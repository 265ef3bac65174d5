"""Consistent, deterministic demo data (the body of `manage.py seed_demo`).

Rows are written directly with set-based `bulk_create` (not through the repositories: going
row by row through `place_order` would take minutes for the defaults). The command keeps the
same invariants the repositories keep:

- categories form a tree (parents are created before their children);
- every product's `stock_quantity` equals the sum of its inventory movements
  (`initial`, then one `sale` per order line, then a `cancellation` per line of a cancelled
  order);
- orders exist in every status, each with items that snapshot sku, name and price, a
  `subtotal`/`total` equal to the sum of the line totals, one status-history row per
  transition (the first one from NULL to `pending`) and a `version` counting its writes;
- an audit trail like the one the repositories write, dated when each thing happened:
  "created" for every user, category, product and order, "status_changed" for every order
  transition, "soft_deleted" for the deleted users and products (actor: `seed_demo`).

Deterministic: the same `--seed` gives the same emails, names, SKUs, prices, order numbers,
items, statuses and amounts (primary keys come from `gen_random_uuid()` and timestamps are
offsets from the start of the current UTC day, so the data stays recent).

Idempotent: demo rows are recognisable (emails `demo.user.N@example.com`, SKUs `DEMO-N`,
slugs `demo-...`, order numbers `DEMO-N`). When any demo row exists the command reports the
counts and does nothing; it never tops up. Everything is written in one transaction, so an
interrupted run leaves nothing behind, and `ANALYZE` runs at the end so the planner knows
the new table sizes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from django.contrib.auth.hashers import make_password
from django.core.management.base import CommandError
from django.db import connections
from django.db.models import ForeignKey, Model

from domain.models import (
    AuditLog,
    Category,
    InventoryMovement,
    Order,
    OrderItem,
    OrderStatus,
    OrderStatusHistory,
    Product,
    User,
)

BATCH_SIZE = 2000
CENT = Decimal("0.01")
_M = TypeVar("_M", bound=Model)


def _words(text: str) -> list[str]:
    """Return the words of `text` (word lists read better as text)."""
    return text.split()


FIRST_NAMES = _words(
    "Ada Alan Barbara Claude Dennis Edsger Frances Grace Guido Hedy Ivan Jean Ken Linus "
    "Margaret Niklaus Radia Shafi Sophie Tim Vint Yukihiro"
)
LAST_NAMES = _words(
    "Allen Backus Cerf Dijkstra Hamilton Hopper Kay Knuth Lamarr Liskov Lovelace "
    "McCarthy Perlman Ritchie Rossum Stroustrup Thompson Torvalds Turing Wilson Wirth"
)
ADJECTIVES = _words(
    "Compact Durable Elegant Ergonomic Lightweight Modular Portable Premium Quiet Rugged "
    "Smart Solar Wireless Vintage Waterproof"
)
NOUNS = _words(
    "Backpack Blender Camera Chair Desk Drone Headphones Keyboard Kettle Lamp Monitor "
    "Mouse Notebook Speaker Tent Thermos Watch"
)
CATEGORY_WORDS = _words(
    "Audio Books Camping Computers Cooking Decor Fitness Garden Gaming Kids Lighting "
    "Music Office Outdoor Pets Photo Storage Tools Travel Video"
)
DESCRIPTION_WORDS = _words(
    "battery bluetooth cable charging classic comfortable compact cotton design durable "
    "easy efficient everyday fast foldable gift glass leather light metal modern "
    "portable powerful quality recycled reliable sleek soft steel strong travel "
    "versatile warranty wood"
)

# The route of status changes that ends in each final status (the first row is NULL→pending).
PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    OrderStatus.PENDING: (("pending",),),
    OrderStatus.PAID: (("pending", "paid"),),
    OrderStatus.SHIPPED: (("pending", "paid", "shipped"),),
    OrderStatus.DELIVERED: (("pending", "paid", "shipped", "delivered"),),
    OrderStatus.CANCELLED: (("pending", "cancelled"), ("pending", "paid", "cancelled")),
    OrderStatus.REFUNDED: (("pending", "paid", "shipped", "delivered", "refunded"),),
}
STATUS_WEIGHTS = {
    OrderStatus.PENDING: 10,
    OrderStatus.PAID: 15,
    OrderStatus.SHIPPED: 15,
    OrderStatus.DELIVERED: 40,
    OrderStatus.CANCELLED: 12,
    OrderStatus.REFUNDED: 8,
}


@dataclass
class DemoData:
    """Every row to insert, built in memory before anything is written."""

    users: list[User] = field(default_factory=list)
    categories: list[Category] = field(default_factory=list)
    products: list[Product] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    items: list[OrderItem] = field(default_factory=list)
    history: list[OrderStatusHistory] = field(default_factory=list)
    movements: list[InventoryMovement] = field(default_factory=list)

    def tables(self) -> list[tuple[str, Sequence[Model]]]:
        """Return the rows in insert order (parents before children)."""
        return [
            ("users", self.users),
            ("categories", self.categories),
            ("products", self.products),
            ("orders", self.orders),
            ("order items", self.items),
            ("status history", self.history),
            ("inventory movements", self.movements),
        ]


def demo_rows_present(using: str = "default") -> dict[str, int]:
    """Return the number of existing demo rows per table (all zero on a fresh database)."""
    return {
        "users": User.all_objects.using(using).filter(email__startswith="demo.user.").count(),
        "categories": Category.all_objects.using(using).filter(slug__startswith="demo-").count(),
        "products": Product.all_objects.using(using).filter(sku__startswith="DEMO-").count(),
        "orders": Order.objects.using(using).filter(number__startswith="DEMO-").count(),
    }


class DemoBuilder:
    """Build a consistent data set from a seeded random generator."""

    def __init__(self, seed: int, anchor: datetime) -> None:
        self.rng = random.Random(seed)
        self.anchor = anchor
        self.data = DemoData()
        # A single unusable password hash for every demo user: they are not meant to log in,
        # and hashing 200 times would dominate the run time.
        self.password = make_password(None)

    def ago(self, days: float) -> datetime:
        return self.anchor - timedelta(days=days)

    def build(self, users: int, categories: int, products: int, orders: int) -> DemoData:
        self.build_users(users)
        self.build_categories(categories)
        initial = self.build_products(products)
        self.build_orders(orders, initial)
        return self.data

    def build_users(self, count: int) -> None:
        rng = self.rng
        for n in range(1, count + 1):
            created = self.ago(400 + rng.random() * 330)
            deleted = rng.random() < 0.03
            self.data.users.append(
                User(
                    email=f"demo.user.{n}@example.com",
                    first_name=rng.choice(FIRST_NAMES),
                    last_name=rng.choice(LAST_NAMES),
                    password=self.password,
                    email_verified=rng.random() < 0.7,
                    is_active=rng.random() >= 0.03,
                    is_staff=False,
                    is_superuser=False,
                    avatar_url="",
                    created_at=created,
                    updated_at=created,
                    deleted_at=self.ago(rng.random() * 30) if deleted else None,
                )
            )

    def build_categories(self, count: int) -> None:
        rng = self.rng
        roots = max(1, count // 4)
        for n in range(1, count + 1):
            word = CATEGORY_WORDS[(n - 1) % len(CATEGORY_WORDS)]
            parent = None if n <= roots else rng.choice(self.data.categories)
            name = word if parent is None else f"{parent.name} {word}"
            created = self.ago(420 + n / 100)
            self.data.categories.append(
                Category(
                    name=name[:200],
                    slug=f"demo-{word.lower()}-{n}",
                    parent=parent,
                    created_at=created,
                    updated_at=created,
                    deleted_at=None,
                )
            )

    def build_products(self, count: int) -> list[int]:
        rng = self.rng
        initial: list[int] = []
        for n in range(1, count + 1):
            created = self.ago(366 + rng.random() * 30)
            stock = rng.randint(20, 200)
            initial.append(stock)
            words = rng.sample(DESCRIPTION_WORDS, 8)
            self.data.products.append(
                Product(
                    sku=f"DEMO-{n:06d}",
                    name=f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {n}",
                    description=" ".join(words).capitalize() + ".",
                    category=rng.choice(self.data.categories) if self.data.categories else None,
                    price=(Decimal(rng.randint(100, 50000)) / 100).quantize(CENT),
                    currency="EUR",
                    stock_quantity=stock,
                    is_active=rng.random() >= 0.05,
                    version=1,
                    created_at=created,
                    updated_at=created,
                    # Deleted after their sales, so old order items point at deleted products.
                    deleted_at=self.anchor - timedelta(minutes=30) if rng.random() < 0.02 else None,
                )
            )
            if stock:
                self.data.movements.append(
                    InventoryMovement(
                        product=self.data.products[-1],
                        delta=stock,
                        reason=InventoryMovement.Reason.INITIAL,
                        created_at=created,
                    )
                )
        return initial

    def build_orders(self, count: int, initial: list[int]) -> None:
        rng = self.rng
        buyers = [u for u in self.data.users if u.is_active]
        sellable = [i for i, p in enumerate(self.data.products) if p.is_active]
        if count and (not buyers or not sellable):
            raise CommandError("Orders need at least one active user and one active product.")
        stock = list(initial)
        statuses = list(STATUS_WEIGHTS)
        weights = list(STATUS_WEIGHTS.values())
        # Placed oldest first, so numbers grow with time like real order numbers.
        offsets = sorted((rng.random() * 364 + 1 / 24 for _ in range(count)), reverse=True)
        for n, offset in enumerate(offsets, start=1):
            # The first orders cover every status, so even a tiny seed shows them all.
            status = statuses[n - 1] if n <= len(statuses) else rng.choices(statuses, weights)[0]
            placed = self.ago(offset)
            lines = self.pick_lines(rng, sellable, stock)
            if not lines:
                continue
            order = Order(
                number=f"DEMO-{n:07d}",
                user=rng.choice(buyers),
                status=status,
                currency="EUR",
                placed_at=placed,
                created_at=placed,
                idempotency_key=None,
            )
            subtotal = Decimal("0.00")
            for index, quantity in lines:
                product = self.data.products[index]
                line_total = (product.price * quantity).quantize(CENT)
                subtotal += line_total
                self.data.items.append(
                    OrderItem(
                        order=order,
                        product=product,
                        sku=product.sku,
                        product_name=product.name,
                        unit_price=product.price,
                        quantity=quantity,
                        line_total=line_total,
                        created_at=placed,
                    )
                )
                self.data.movements.append(
                    InventoryMovement(
                        product=product,
                        delta=-quantity,
                        reason=InventoryMovement.Reason.SALE,
                        order=order,
                        created_at=placed,
                    )
                )
            order.subtotal = order.total = subtotal
            at = self.add_history(rng, order, status, placed, offset)
            order.updated_at = at
            if status == OrderStatus.CANCELLED:
                for index, quantity in lines:
                    stock[index] += quantity
                    self.data.movements.append(
                        InventoryMovement(
                            product=self.data.products[index],
                            delta=quantity,
                            reason=InventoryMovement.Reason.CANCELLATION,
                            order=order,
                            created_at=at,
                        )
                    )
            self.data.orders.append(order)
        for product, quantity in zip(self.data.products, stock, strict=True):
            product.stock_quantity = quantity

    @staticmethod
    def pick_lines(
        rng: random.Random, sellable: list[int], stock: list[int]
    ) -> list[tuple[int, int]]:
        """Choose 1-4 distinct in-stock products and quantities, taking them from `stock`."""
        lines = []
        for index in rng.sample(sellable, min(len(sellable), rng.randint(1, 4))):
            quantity = min(rng.randint(1, 3), stock[index])
            if quantity:
                stock[index] -= quantity
                lines.append((index, quantity))
        return lines

    def add_history(
        self, rng: random.Random, order: Order, status: str, placed: datetime, offset: float
    ) -> datetime:
        """Add one history row per transition; return the time of the last one."""
        path = rng.choice(PATHS[status])
        # Transitions are spread over the time between placement and the anchor.
        step = timedelta(days=min(offset, 4) / len(path))
        previous: str | None = None
        at = placed
        for position, to_status in enumerate(path):
            at = placed + step * position
            self.data.history.append(
                OrderStatusHistory(
                    order=order,
                    from_status=previous,
                    to_status=to_status,
                    actor=None,
                    note="demo data",
                    created_at=at,
                )
            )
            previous = to_status
        order.version = len(path)
        return at


def new_keys(count: int, using: str) -> list[UUID]:
    """Return `count` keys from gen_random_uuid(), in one query (bulk_create cannot read
    back db_default keys)."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT gen_random_uuid() FROM generate_series(1, %s)", [count])
        return [row[0] for row in cursor.fetchall()]


def insert(rows: Sequence[_M], using: str, progress: Any) -> None:
    """Insert rows in batches: one key query and one multi-row INSERT per batch."""
    if not rows:
        return
    model = type(rows[0])
    for start in range(0, len(rows), BATCH_SIZE):
        batch = rows[start : start + BATCH_SIZE]
        for row, key in zip(batch, new_keys(len(batch), using), strict=True):
            row.pk = key
        for row in batch:
            # FK objects got their keys in an earlier batch; copy them into the *_id columns.
            for fk in model._meta.concrete_fields:
                if isinstance(fk, ForeignKey) and fk.is_cached(row):
                    setattr(row, fk.attname, getattr(fk.get_cached_value(row), "pk", None))
        model._default_manager.db_manager(using).bulk_create(batch)
        progress.update(len(batch))


def analyze(using: str) -> None:
    """Refresh planner statistics after a bulk load (so FK checks and queries use indexes)."""
    models = (
        AuditLog,
        Category,
        InventoryMovement,
        Order,
        OrderItem,
        OrderStatusHistory,
        Product,
        User,
    )
    names = sorted(connections[using].ops.quote_name(m._meta.db_table) for m in models)
    with connections[using].cursor() as cursor:
        cursor.execute("ANALYZE " + ", ".join(names))
