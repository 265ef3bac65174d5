"""config/urls.py and the development admin: a home page, "View site", the toolbar collapsed."""

from __future__ import annotations

import json

import pytest
from django.contrib import admin
from django.urls import reverse

from tests.test_settings import run


@pytest.mark.django_db
def test_home_page_links_into_the_admin(client):
    response = client.get("/")
    assert response.status_code == 200
    content = response.content.decode()
    for name in ("index", "domain_order_changelist", "domain_product_changelist"):
        assert f'href="{reverse(f"admin:{name}")}"' in content


def test_view_site_goes_to_the_home_page():
    assert admin.site.site_url == reverse("home") == "/"


def test_debug_toolbar_starts_collapsed_in_development():
    code = (
        "import json, config.settings as s; "
        "print(json.dumps([s.DEBUG_TOOLBAR, getattr(s, 'DEBUG_TOOLBAR_CONFIG', None)]))"
    )
    result = run(["-c", code], DEBUG="1", DEBUG_TOOLBAR="1")
    assert result.returncode == 0, result.stderr
    enabled, config = json.loads(result.stdout.strip().splitlines()[-1])
    assert enabled is True
    assert config["SHOW_COLLAPSED"] is True
