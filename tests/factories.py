"""factory-boy factories for every model; `deleted=True` traits on soft-deletable ones."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from domain.models import (
    AuditLog,
    Category,
    InventoryMovement,
    Order,
    OrderItem,
    OrderStatusHistory,
    Product,
    SystemConfig,
    User,
    UserSession,
)


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.django.Password("correct horse battery staple")
    is_active = True

    class Params:
        deleted = factory.Trait(deleted_at=factory.LazyFunction(timezone.now))


class CategoryFactory(DjangoModelFactory):
    class Meta:
        model = Category

    name = factory.Sequence(lambda n: f"Category {n}")
    slug = factory.Sequence(lambda n: f"category-{n}")
    parent = None

    class Params:
        deleted = factory.Trait(deleted_at=factory.LazyFunction(timezone.now))


class ProductFactory(DjangoModelFactory):
    """A product. Stock is 0 unless given; use `with_stock()` to also write the ledger."""

    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU-{n:06d}")
    name = factory.Sequence(lambda n: f"Product {n}")
    description = factory.Faker("sentence")
    category = factory.SubFactory(CategoryFactory)
    price = Decimal("9.99")
    currency = "EUR"
    stock_quantity = 0
    is_active = True

    class Params:
        deleted = factory.Trait(deleted_at=factory.LazyFunction(timezone.now))

    @classmethod
    def with_stock(cls, quantity: int, **kwargs: object) -> Product:
        """Create a product holding `quantity` units, with the matching `initial` movement."""
        product = cls.create(stock_quantity=quantity, **kwargs)
        if quantity:
            InventoryMovement.objects.create(product=product, delta=quantity, reason="initial")
        return product


class InventoryMovementFactory(DjangoModelFactory):
    class Meta:
        model = InventoryMovement

    product = factory.SubFactory(ProductFactory)
    delta = 1
    reason = InventoryMovement.Reason.ADJUSTMENT


class OrderFactory(DjangoModelFactory):
    class Meta:
        model = Order

    number = factory.Sequence(lambda n: f"ORD-T{n:08d}")
    user = factory.SubFactory(UserFactory)
    status = "pending"
    currency = "EUR"
    subtotal = Decimal("0.00")
    total = Decimal("0.00")
    placed_at = factory.LazyFunction(timezone.now)


class OrderItemFactory(DjangoModelFactory):
    class Meta:
        model = OrderItem

    order = factory.SubFactory(OrderFactory)
    product = factory.SubFactory(ProductFactory)
    sku = factory.LazyAttribute(lambda o: o.product.sku)
    product_name = factory.LazyAttribute(lambda o: o.product.name)
    unit_price = factory.LazyAttribute(lambda o: o.product.price)
    quantity = 1
    line_total = factory.LazyAttribute(lambda o: o.unit_price * o.quantity)


class OrderStatusHistoryFactory(DjangoModelFactory):
    class Meta:
        model = OrderStatusHistory

    order = factory.SubFactory(OrderFactory)
    from_status = None
    to_status = "pending"


def _token_hash() -> str:
    return hashlib.sha256(secrets.token_bytes(32)).hexdigest()


class UserSessionFactory(DjangoModelFactory):
    class Meta:
        model = UserSession

    user = factory.SubFactory(UserFactory)
    token_hash = factory.LazyFunction(_token_hash)
    ip_address = "192.0.2.10"
    user_agent = "pytest"
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=1))


class AuditLogFactory(DjangoModelFactory):
    class Meta:
        model = AuditLog

    action = "created"
    entity_type = "product"
    entity_id = factory.Sequence(lambda n: f"{n}")
    changes = factory.LazyFunction(dict)


class SystemConfigFactory(DjangoModelFactory):
    class Meta:
        model = SystemConfig

    key = factory.Sequence(lambda n: f"setting.{n}")
    value = factory.LazyFunction(lambda: {"enabled": True})
