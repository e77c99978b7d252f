"""The ops console as an operator uses it, in headless Chromium: log in, watch subscribers,
retry a parked event, rebuild a projection to 100 %, find a stream by SKU, filter the audit.

The scenario runs in order on one browser and one stack (module scope); each page is saved as a
screenshot under the test's output directory.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pymongo import MongoClient
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from core.auth import mint_token
from domain.values import product_id, stock_item_id
from tests.conftest import JWT_SECRET
from tests.console.conftest import Stack

SKU = "CON-1"
SUBSCRIBERS = ["products", "stock", "orders", "sales_daily", "audit_log", "fulfilment"]
T = TypeVar("T")


def wait(browser: Chrome, condition: Callable[[Chrome], T], seconds: float = 30) -> T:
    """Wait until `condition` holds (returns something truthy); stale elements mean retry."""
    return WebDriverWait(browser, seconds, 0.1, [StaleElementReferenceException]).until(condition)


def accept_dialog(browser: Chrome, text: str | None = None) -> str:
    """Accept the confirm() or prompt() the page opened (typing `text` into a prompt)."""

    def dialog(_: Chrome) -> Any:
        try:
            return browser.switch_to.alert
        except NoAlertPresentException:
            return False

    alert = wait(browser, dialog, 10)
    message = str(alert.text)
    if text is not None:
        alert.send_keys(text)
    alert.accept()
    return message


def command(stack: Stack, path: str, body: dict[str, Any]) -> httpx.Response:
    """A command sent as a write client would."""
    token = mint_token(JWT_SECRET, "shop-admin", ["commands:write"])
    return httpx.post(stack.url + path, json=body, headers={"Authorization": f"Bearer {token}"})


def shot(browser: Chrome, folder: Path, name: str) -> None:
    """Save the page as it is now."""
    assert browser.save_screenshot(str(folder / f"{name}.png"))


def flash(browser: Chrome) -> str:
    """The page's status line."""
    return str(browser.find_element(By.ID, "flash").text)


def test_logging_in_shows_all_six_subscribers_live(
    browser: Chrome, stack: Stack, screenshots: Path
) -> None:
    browser.get(stack.url + "/console/")
    token_box = wait(browser, lambda b: b.find_element(By.ID, "token"))
    assert browser.find_element(By.CSS_SELECTOR, "label[for=token]").text  # labelled
    token_box.send_keys("not-a-token")
    token_box.send_keys(Keys.TAB, Keys.ENTER)  # the keyboard reaches the button
    wait(browser, lambda b: "Cannot log in" in flash(b))
    assert not browser.find_element(By.ID, "nav").is_displayed()

    browser.find_element(By.ID, "token").send_keys(stack.admin_token)
    browser.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
    rows = wait(
        browser,
        lambda b: (
            (r := b.find_elements(By.CSS_SELECTOR, "#subscribers-table tbody tr"))
            and len(r) == 6
            and r
        ),
    )
    assert [row.get_attribute("data-subscriber") for row in rows] == SUBSCRIBERS
    # Live: a write shows up as the store's head moving, without reloading the page.
    head = browser.find_element(By.ID, "store-head").text
    created = command(
        stack, "/api/v1/products", {"sku": SKU, "name": "Lamp", "price": "5.00", "category": "home"}
    )
    assert created.status_code == 201, created.text
    assert command(stack, f"/api/v1/stock/{SKU}/receive", {"quantity": 5}).status_code == 201
    wait(browser, lambda b: b.find_element(By.ID, "store-head").text != head)
    wait(
        browser,
        lambda b: all(
            "running" in r.text
            for r in b.find_elements(By.CSS_SELECTOR, "#subscribers-table tbody tr")
        ),
    )
    assert browser.find_elements(By.CSS_SELECTOR, "#subscribers-table svg.spark polyline")
    assert "operator" in browser.find_element(By.ID, "who-name").text
    # The token is nowhere but session storage: not in the URL, not in local storage.
    assert stack.admin_token not in browser.current_url
    assert browser.execute_script("return window.localStorage.length") == 0
    time.sleep(3)  # a few samples in the sparklines, for the screenshot
    shot(browser, screenshots, "subscribers")


def test_a_parked_event_is_inspected_and_retried_from_the_page(
    browser: Chrome, stack: Stack, screenshots: Path
) -> None:
    settings = stack.settings
    with MongoClient(settings.mongodb_url) as client:
        db = client[settings.mongodb_db]
        product = str(product_id(SKU))
        deadline = time.monotonic() + 30
        while db["products"].find_one({"_id": product}) is None:  # projected first
            assert time.monotonic() < deadline
            time.sleep(0.1)
        db["products"].delete_one({"_id": product})  # a damaged view: the rename will park
        renamed = command(stack, f"/api/v1/products/{product}/rename", {"name": "Desk lamp"})
        assert renamed.status_code == 200, renamed.text

        browser.get(stack.url + "/console/#parked")
        row = None
        for _ in range(120):  # the worker parks it after its retries; the page reads on Refresh
            found = browser.find_elements(By.CSS_SELECTOR, "#parked-list tbody tr")
            if found:
                row = found[0]
                break
            browser.find_element(By.ID, "parked-refresh").click()
            time.sleep(0.5)
        assert row is not None, "no parked event shown"
        assert "ProductRenamed" in row.text and product in row.text
        row.find_element(By.XPATH, ".//button[text()='Inspect']").click()
        detail = wait(
            browser, lambda b: (d := b.find_element(By.ID, "parked-detail")).is_displayed() and d
        )
        assert "ProductRenamed" in browser.find_element(By.ID, "detail-error").text
        assert '"name": "Desk lamp"' in browser.find_element(By.ID, "detail-event").text
        shot(browser, screenshots, "parked")
        detail.find_element(By.ID, "detail-close").click()

        browser.find_element(By.CSS_SELECTOR, "button[data-retry=products]").click()
        assert "Retry the 1 parked event(s) of products" in accept_dialog(browser)
        wait(browser, lambda b: "1 of 1 parked event(s) applied" in flash(b))
        wait(browser, lambda b: b.find_elements(By.ID, "parked-none"))
        restored = db["products"].find_one({"_id": product})
        assert restored is not None and restored["name"] == "Desk lamp"  # refolded whole


def test_a_rebuild_started_from_the_page_reaches_100_percent(
    browser: Chrome, stack: Stack, screenshots: Path
) -> None:
    browser.get(stack.url + "/console/#jobs")
    Select(wait(browser, lambda b: b.find_element(By.ID, "rebuild-projection"))).select_by_value(
        "stock"
    )
    browser.find_element(By.CSS_SELECTOR, "#rebuild-form button").click()
    assert "Rebuild stock?" in accept_dialog(browser)
    queued = wait(browser, lambda b: re.search(r"job ([0-9a-f]{8})", flash(b)))
    row = f"#jobs-table tbody tr[data-job^='{queued.group(1)}']"  # this job's row, by its id
    done = wait(
        browser,
        lambda b: (
            (r := b.find_element(By.CSS_SELECTOR, row)).get_attribute("data-status") == "done" and r
        ),
        60,
    )
    assert "rebuild" in done.text and "stock" in done.text
    assert done.get_attribute("data-percent") == "100" and "100 %" in done.text
    bar = done.find_element(By.TAG_NAME, "progress")
    assert bar.get_attribute("value") == bar.get_attribute("max")
    shot(browser, screenshots, "jobs")


def test_a_stream_is_found_by_sku_and_paged_with_its_metadata(
    browser: Chrome, stack: Stack, screenshots: Path
) -> None:
    for _ in range(50):  # a stream longer than a page (50 events)
        assert command(stack, f"/api/v1/stock/{SKU}/receive", {"quantity": 1}).status_code == 200
    browser.get(stack.url + "/console/#streams")
    box = wait(browser, lambda b: b.find_element(By.ID, "stream-query"))
    box.send_keys(SKU, Keys.ENTER)
    choices = wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#stream-choices button"))
    found = {c.get_attribute("data-stream") for c in choices}
    assert found == {str(product_id(SKU)), str(stock_item_id(SKU))}
    [stock] = [c for c in choices if c.get_attribute("data-stream") == str(stock_item_id(SKU))]
    stock.click()
    rows = wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#stream-table tbody tr"))
    assert len(rows) == 50 and "StockItemOpened" in rows[0].text
    assert "StockReceived" in rows[1].text
    assert '"actor": "shop-admin"' in rows[1].text  # the metadata, shown
    shot(browser, screenshots, "streams")
    browser.find_element(By.ID, "stream-more").click()
    rows = wait(
        browser,
        lambda b: (
            (r := b.find_elements(By.CSS_SELECTOR, "#stream-table tbody tr")) and len(r) > 50 and r
        ),
    )
    versions = [int(r.get_attribute("data-version")) for r in rows]
    assert versions == list(range(1, 53))  # every event once, in order
    assert not browser.find_element(By.ID, "stream-more").is_displayed()
    box = browser.find_element(By.ID, "stream-query")
    box.clear()
    box.send_keys(str(uuid.uuid4()), Keys.ENTER)
    wait(browser, lambda b: "No stream" in flash(b))


def test_the_audit_is_filtered_by_actor_type_and_correlation(
    browser: Chrome, stack: Stack, screenshots: Path
) -> None:
    browser.get(stack.url + "/console/#audit")
    rows = wait(
        browser,
        lambda b: (
            (r := b.find_elements(By.CSS_SELECTOR, "#audit-table tbody tr"))
            and "No entries" not in r[0].text
            and r
        ),
    )
    assert len(rows) >= 3
    browser.find_element(By.ID, "audit-type").send_keys("ProductRenamed", Keys.ENTER)
    wait(
        browser,
        lambda b: all(
            "ProductRenamed" in r.text
            for r in b.find_elements(By.CSS_SELECTOR, "#audit-table tbody tr")
        ),
    )
    renamed = browser.find_elements(By.CSS_SELECTOR, "#audit-table tbody tr")
    assert len(renamed) == 1 and "shop-admin" in renamed[0].text
    browser.find_element(By.ID, "audit-type").clear()
    renamed[0].find_element(By.CSS_SELECTOR, "button.link").click()  # its correlation id
    wait(browser, lambda b: b.find_element(By.ID, "audit-correlation").get_attribute("value"))
    shot(browser, screenshots, "audit")
    entries = browser.find_elements(By.CSS_SELECTOR, "#audit-table tbody tr")
    assert len(entries) == 1 and "ProductRenamed" in entries[0].text


def test_the_console_is_served_with_a_strict_policy_and_logs_out(
    browser: Chrome, stack: Stack
) -> None:
    page = httpx.get(stack.url + "/console/")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert "<script>" not in page.text and "style=" not in page.text  # nothing inline
    assert httpx.get(stack.url + "/console/../pyproject.toml").status_code == 404
    assert httpx.get(stack.url + "/console/secrets.txt").status_code == 404
    browser.get(stack.url + "/console/#subscribers")
    wait(browser, lambda b: b.find_element(By.ID, "logout").is_displayed())
    browser.find_element(By.ID, "logout").click()
    wait(browser, lambda b: b.find_element(By.ID, "token").is_displayed())
    assert browser.execute_script("return window.sessionStorage.length") == 0
