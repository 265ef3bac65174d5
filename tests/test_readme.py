"""README.md: the code of "A short tour" runs as written, also on a database with data."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from domain.models import Order, OrderStatus

README = Path(__file__).resolve().parent.parent / "README.md"


def tour_code() -> str:
    """Return the ```python block under "## A short tour" in README.md."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## A short tour\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"^```python\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)
    assert found, 'README.md has no ```python block under "## A short tour"'
    return found.group(1)


def run_tour() -> None:
    exec(compile(tour_code(), str(README), "exec"), {"__name__": "readme_tour"})


def test_tour_block_is_found_and_compiles():
    code = tour_code()
    compile(code, str(README), "exec")
    assert "place_order" in code


@pytest.mark.django_db
def test_tour_runs_twice_on_demo_data_and_leaves_paid_orders(capsys):
    call_command(
        "seed_demo",
        users=5,
        categories=3,
        products=60,
        orders=10,
        no_progress=True,
        stdout=StringIO(),
        stderr=StringIO(),
    )
    paid_before = Order.objects.filter(status=OrderStatus.PAID).count()

    run_tour()
    run_tour()  # again on the same data: nothing it creates may collide with the first run

    assert Order.objects.filter(status=OrderStatus.PAID).count() == paid_before + 2
    output = capsys.readouterr().out
    assert output.count("99 socks wanted, 4 left") == 2
    assert output.count(" paid 192.30") == 2
