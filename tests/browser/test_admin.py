"""The admin in a real browser: log in, every list, soft delete and restore, order status
changes, stock, prefix search. Run by `make test-browser` (marker `browser`)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.sites import site
from django.core.management import call_command
from django.urls import reverse

from domain.models import Order, Product
from tests.factories import OrderFactory, ProductFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: Text Django shows for an error page or a form error summary.
ERROR_TEXTS = ("Server Error", "Traceback", "Page not found", "Please correct the error")


def admin_url(live_server: Any, name: str, *args: Any) -> str:
    return live_server.url + reverse(f"admin:{name}", args=args)


def select_rows_and_run(page: Any, keys: list[Any], action: str) -> None:
    """Tick the rows of `keys` on the open changelist and run `action` with "Go"."""
    for key in keys:
        page.check(f'input.action-select[value="{key}"]')
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")
    page.wait_for_load_state()


def messages(page: Any) -> str:
    return page.inner_text("ul.messagelist") if page.locator("ul.messagelist").count() else ""


def test_login_and_every_changelist_opens(admin_page: Any, live_server: Any) -> None:
    call_command(
        "seed_demo", users=4, categories=3, products=6, orders=8, no_progress=True, verbosity=0
    )
    models = sorted(site._registry, key=lambda m: (m._meta.app_label, m._meta.model_name))
    assert len(models) >= 10
    for model in models:
        name = f"{model._meta.app_label}_{model._meta.model_name}_changelist"
        response = admin_page.goto(admin_url(live_server, name))
        assert response.status == 200, name
        body = admin_page.inner_text("body")
        assert not [t for t in ERROR_TEXTS if t in body], name
        assert admin_page.locator("#changelist").count() == 1, name


def test_view_site_leads_to_the_home_page(admin_page: Any, live_server: Any) -> None:
    admin_page.click("text=View site")
    admin_page.wait_for_load_state()
    assert admin_page.url.rstrip("/") == live_server.url
    admin_page.click("text=Open the admin")
    admin_page.wait_for_selector("#site-name")


def test_soft_delete_and_restore_show_in_the_list_audit_log_and_history(
    admin_page: Any, live_server: Any
) -> None:
    product = ProductFactory.create(name="Browser Lamp", sku="BRW-1")
    admin_page.goto(admin_url(live_server, "domain_product_changelist"))
    select_rows_and_run(admin_page, [product.pk], "soft_delete_selected")
    assert "Soft-deleted 1 product" in messages(admin_page)

    # The marker is on screen at 1400 px, without scrolling sideways.
    marker = admin_page.locator("#result_list .deleted-marker").first
    assert marker.inner_text().startswith("Deleted")
    box = marker.bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= admin_page.viewport_size["width"]
    assert admin_page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    select_rows_and_run(admin_page, [product.pk], "restore_selected")
    assert "Restored 1 product" in messages(admin_page)
    assert admin_page.locator("#result_list .deleted-marker").count() == 0

    audit = admin_url(live_server, "domain_auditlog_changelist")
    admin_page.goto(f"{audit}?entity_type=product&q={product.pk}")
    rows = admin_page.inner_text("#result_list tbody")
    assert "soft deleted" in rows
    assert "restored" in rows
    assert "staff@example.com" in rows

    admin_page.goto(admin_url(live_server, "domain_product_history", product.pk))
    history = admin_page.inner_text("#change-history")
    assert "Soft-deleted." in history
    assert "Restored." in history


def test_order_moves_from_pending_to_shipped(admin_page: Any, live_server: Any) -> None:
    order = OrderFactory.create(status="pending", number="ORD-BROWSER-1")
    admin_page.goto(admin_url(live_server, "domain_order_changelist"))

    # A change the status graph refuses is a message, not an error page.
    select_rows_and_run(admin_page, [order.pk], "mark_shipped")
    assert "cannot move from 'pending' to 'shipped'" in messages(admin_page)

    select_rows_and_run(admin_page, [order.pk], "mark_paid")
    assert "Order ORD-BROWSER-1: now paid" in messages(admin_page)

    # The order's own page offers the next steps as buttons.
    admin_page.click('#result_list a:has-text("ORD-BROWSER-1")')
    admin_page.fill("#id_transition_note", "left the warehouse")
    admin_page.click("#order-transition button[value=shipped]")
    admin_page.wait_for_load_state()
    assert "now shipped" in messages(admin_page)
    history = admin_page.inner_text("#status_history-group")
    assert "left the warehouse" in history
    assert "staff@example.com" in history

    order.refresh_from_db()
    assert (order.status, order.version) == ("shipped", 3)


def test_product_search_matches_the_start_of_a_word(admin_page: Any, live_server: Any) -> None:
    ProductFactory.create(name="Rugged Tent 1", description="For camping")
    ProductFactory.create(name="Quiet Kettle 2", description="Boils water")
    admin_page.goto(admin_url(live_server, "domain_product_changelist"))
    admin_page.fill("#searchbar", "ten")
    admin_page.press("#searchbar", "Enter")
    admin_page.wait_for_load_state()
    rows = admin_page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "Rugged Tent 1" in rows.first.inner_text()


def test_restock_from_the_product_page(admin_page: Any, live_server: Any) -> None:
    product = ProductFactory.with_stock(3, sku="BRW-STOCK")
    admin_page.goto(admin_url(live_server, "domain_product_change", product.pk))
    admin_page.click("text=Restock or adjust stock")
    admin_page.fill("#id_quantity", "5")
    admin_page.click("input[name=apply]")
    admin_page.wait_for_load_state()
    assert "BRW-STOCK: stock +5 (restock), now 8." in messages(admin_page)
    assert Product.objects.get(pk=product.pk).stock_quantity == 8
    assert not Order.objects.exists()
