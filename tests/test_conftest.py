"""The suite-wide N+1 detection from tests/conftest.py really fails tests."""

from __future__ import annotations

import pytest
from zeal import NPlusOneError, zeal_ignore

from domain.models import InventoryMovement
from tests.factories import InventoryMovementFactory


@pytest.mark.django_db
def test_lazy_relation_load_in_a_loop_raises_n_plus_one_error():
    InventoryMovementFactory.create_batch(3)
    with pytest.raises(NPlusOneError, match=r"InventoryMovement\.product"):
        [m.product.sku for m in InventoryMovement.objects.all()]


@pytest.mark.django_db
def test_preloaded_relation_in_a_loop_passes(django_assert_num_queries):
    InventoryMovementFactory.create_batch(3)
    with django_assert_num_queries(1):
        skus = [m.product.sku for m in InventoryMovement.objects.select_related("product")]
    assert len(skus) == 3


@pytest.mark.django_db
def test_single_lazy_load_is_not_an_n_plus_one():
    InventoryMovementFactory.create()
    movement = InventoryMovement.objects.get()
    assert movement.product.sku


@pytest.mark.django_db
def test_zeal_ignore_allows_a_deliberate_n_plus_one():
    InventoryMovementFactory.create_batch(2)
    with zeal_ignore():
        skus = [m.product.sku for m in InventoryMovement.objects.all()]
    assert len(skus) == 2
