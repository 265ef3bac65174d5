"""Browser fixtures: Debian's headless Chromium driven by Playwright against `live_server`.

Only the `chromium` package is used (`CHROMIUM` overrides its path); Playwright's own
browser builds are never downloaded. A failing test leaves a screenshot of its page in
.test-output/browser/ (git-ignored).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parents[2] / ".test-output" / "browser"
#: The width the admin must fit (the "deleted" marker visible without scrolling).
VIEWPORT = {"width": 1400, "height": 900}
PASSWORD = "a-long-browser-test-passphrase"  # a throwaway test user


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item, so fixtures can tell a failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module.

    Playwright's synchronous API keeps an event loop running in this thread, so Django
    would refuse the tests' own database calls as "async-unsafe"; they are not, as nothing
    else runs in this thread. The permission lasts as long as the browser, which lives
    only as long as its module.
    """
    if not Path(CHROMIUM).exists():
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM)"
        if os.environ.get("BROWSER_REQUIRED"):  # make test-browser: a skip would hide it
            pytest.fail(missing)
        pytest.skip(missing)
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_api.sync_playwright() as playwright:
            # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh 1400 px wide page; on failure its screenshot goes to .test-output/browser/."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(OUTPUT / f"{request.node.name}.png"), full_page=True)
    context.close()


@pytest.fixture
def staff(transactional_db: None, django_user_model: Any) -> Any:
    """A superuser who logs in to the admin with PASSWORD."""
    return django_user_model.objects.create_superuser("staff@example.com", PASSWORD)


@pytest.fixture
def admin_page(page: Any, live_server: Any, staff: Any) -> Any:
    """The page, logged in to the admin as `staff` (through the real login form)."""
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", staff.email)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
    return page
