"""The web console in a real browser: Debian's headless Chromium driven by Selenium, against a real
server on 127.0.0.1.

The session fixture installs ``chromium`` and ``chromium-driver`` with apt-get when they are missing
(as root; elsewhere the tests are skipped with the reason), as ``tests/libvirt_setup.py`` does for
libvirt. ``EUCA_CONSOLE_SCREENSHOTS=1`` also writes the main pages to ``docs/console/*.png``.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from euca.iam import hash_password
from euca.services.common import ADMIN
from tests.ec2_server import Box
from tests.test_console import ADMIN_PASSWORD, PASSWORD, console_box

APT_PACKAGES = ["chromium", "chromium-driver"]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,900"]
DOCS = Path(__file__).resolve().parent.parent / "docs" / "console"


def _binaries() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def _install() -> str | None:
    """None when Chromium, its driver and Selenium are usable, else why not."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if _binaries() is not None:
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "chromium and chromium-driver are missing and installing them needs root and apt-get"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for step in (["apt-get", "update", "-q"],
                 ["apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES]):
        done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            return f"{' '.join(step[:3])} failed: {done.stderr.strip()[-300:]}"
    return None if _binaries() is not None else "chromium installed but not found on PATH"


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    reason = _install()
    if reason is not None:
        pytest.skip(f"browser: {reason}")
    found = _binaries()
    assert found is not None
    return found


@pytest.fixture
def browser(chromium: tuple[str, str], tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium[0]
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(chromium[1]), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    with console_box(tmp_path / "box") as b:
        yield b


def _wait(what: Callable[[], Any], seconds: float = 10.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = what()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.1)


def _downloaded(folder: Path, pattern: str) -> Path:
    def done() -> Path | None:
        files = [p for p in folder.iterdir() if re.fullmatch(pattern, p.name)]
        return files[0] if files and files[0].stat().st_size > 0 else None
    found: Path = _wait(done)
    return found


def _busy_cluster(box: Box) -> None:
    """A few instances and a few seconds of samples, so the administrator's plot has a line to draw."""
    import gc

    from euca.console import Console

    console = next(o for o in gc.get_objects() if isinstance(o, Console) and o.cloud is box.cloud)
    console.usage.every = 0.2
    machine = next(i.image_id for i in box.cloud.images.all() if i.image_id.startswith("emi-"))
    for count, vmtype in ((2, "m1.small"), (1, "c1.medium"), (1, "m1.large")):
        box.client().run_instances(ImageId=machine, MinCount=count, MaxCount=count, InstanceType=vmtype)
        time.sleep(0.5)


class Page:
    """What the tests do with a page, by element ids."""

    def __init__(self, driver: Any, box: Box) -> None:
        from selenium.webdriver.common.by import By

        self.driver, self.base, self.by = driver, box.url + "/console", By

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def fill(self, **fields: str) -> None:
        for name, value in fields.items():
            self._settled(lambda name=name, value=value: self._type(name, value))

    def _type(self, name: str, value: str) -> None:
        element = self.driver.find_element(self.by.ID, name)
        element.clear()
        element.send_keys(value)

    def click(self, element_id: str, confirm: bool = False, navigates: bool = True) -> None:
        """Click, accept the confirmation if one is asked, and wait for the next page."""
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        old = self._settled(lambda: self._click(element_id))
        if confirm:
            WebDriverWait(self.driver, 5).until(expected_conditions.alert_is_present()).accept()
        if navigates:
            WebDriverWait(self.driver, 10).until(expected_conditions.staleness_of(old))

    def _click(self, element_id: str) -> Any:
        old = self.driver.find_element(self.by.TAG_NAME, "html")
        self.driver.find_element(self.by.ID, element_id).click()
        return old

    def _settled(self, act: Callable[[], Any]) -> Any:
        """``act()`` on the page as it is now: a page that was still loading or reloading (its own
        refresh while instances change state) detaches the elements found, or has no body yet between
        two documents, so act again."""
        from selenium.common.exceptions import (
            NoSuchElementException,
            StaleElementReferenceException,
            WebDriverException,
        )

        for _ in range(20):
            try:
                return act()
            except (StaleElementReferenceException, NoSuchElementException):
                pass
            except WebDriverException as exc:
                if "does not belong to the document" not in str(exc):
                    raise
            time.sleep(0.1)
        return act()  # the page has settled or never will: its own error says which

    def text(self) -> str:
        return str(self._settled(lambda: self.driver.find_element(self.by.TAG_NAME, "body").text))

    def select(self, element_id: str, value: str) -> None:
        from selenium.webdriver.support.ui import Select

        Select(self.driver.find_element(self.by.ID, element_id)).select_by_value(value)

    def sign_in(self, account: str, password: str, user: str = ADMIN) -> None:
        self.open("/signin")
        self.fill(account=account, user=user, password=password)
        self.click("signin")

    def sign_out(self) -> None:
        self.click("signout")

    def shot(self, name: str) -> None:
        if os.environ.get("EUCA_CONSOLE_SCREENSHOTS"):
            DOCS.mkdir(parents=True, exist_ok=True)
            self.driver.save_screenshot(str(DOCS / f"{name}.png"))


def test_sign_up_approve_launch_terminate_and_use_the_credentials(browser: Any, box: Box) -> None:
    page = Page(browser, box)
    admin = box.cloud.accounts.get(ADMIN)
    assert admin is not None
    page.open("/")
    assert "Sign in to your cloud" in page.text()
    page.shot("signin")

    # 1.x's sign-up: a request, approved by the administrator
    page.click("signup-link")
    page.fill(name="Ada Lovelace", email="ada@example.com", account="acme", password=PASSWORD, password2=PASSWORD)
    page.click("signup")
    assert "waits for the administrator's approval" in page.text()
    page.sign_in(admin.account_id, ADMIN_PASSWORD)
    _busy_cluster(box)
    page.open("/admin")
    assert "acme" in page.text() and "cluster01" in page.text()
    page.shot("admin")
    page.click("approve-acme")
    assert "Approved: account acme created." in page.text()
    page.sign_out()
    acme = box.cloud.accounts.get("acme")
    assert acme is not None

    # a wrong password is refused; the right one signs in by account id
    page.sign_in(acme.account_id, "not the password")
    assert "not right" in page.text()
    page.sign_in(acme.account_id, PASSWORD)
    assert "admin @ acme" in page.text()

    # a key pair, downloaded once
    page.fill(**{"keypair-name": "laptop"})
    page.click("create-keypair", navigates=False)
    pem = _downloaded(browser.downloads, r"laptop\.pem")
    assert pem.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    _wait(lambda: "laptop" in page.text())

    # launch, see it running, terminate it
    page.open("/launch")
    machine = next(i.image_id for i in box.cloud.images.all() if i.image_id.startswith("emi-"))
    page.select("image", machine)
    page.select("type", "m1.small")
    page.select("key", "laptop")
    page.shot("launch")
    page.click("launch")
    launched = re.search(r"Launched (i-[0-9A-F]{8})", page.text())
    assert launched, page.text()
    instance_id = launched.group(1)

    def running() -> bool:
        page.open("/dashboard")
        return bool(browser.find_elements(page.by.CSS_SELECTOR, f"#row-{instance_id} [data-state='running']"))
    _wait(running)
    page.shot("dashboard")
    page.click(f"terminate-{instance_id}", confirm=True)
    assert f"Terminating {instance_id}." in page.text()

    # the credentials zip, and its keys in boto3
    page.click("download-credentials", navigates=False)
    archive = zipfile.ZipFile(io.BytesIO(_downloaded(browser.downloads, r"euca2-acme-admin-x509\.zip").read_bytes()))
    env = dict(re.findall(r"^export (\w+)=(.*)$", archive.read("eucarc").decode(), re.M))
    ec2 = boto3.client("ec2", endpoint_url=env["EC2_URL"], aws_access_key_id=env["EC2_ACCESS_KEY"],
                       aws_secret_access_key=env["EC2_SECRET_KEY"], region_name=env["AWS_DEFAULT_REGION"])
    (found,) = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"]
    assert found["State"]["Name"] in ("shutting-down", "terminated") and found["KeyName"] == "laptop"


def test_forged_tokens_other_accounts_ids_and_the_lock_out_are_refused(browser: Any, box: Box) -> None:
    page = Page(browser, box)
    theirs = box.client().run_instances(ImageId=next(i.image_id for i in box.cloud.images.all()
                                                     if i.image_id.startswith("emi-")),
                                        MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    box.cloud.accounts.create("mine")
    box.cloud.accounts.set_login("mine", ADMIN, hash_password(PASSWORD), reset=False, create=True)
    page.sign_in("mine", PASSWORD)
    assert "admin @ mine" in page.text()

    # a form whose CSRF token is not the session's changes nothing
    browser.execute_script("for (const e of document.querySelectorAll('input[name=csrf]')) e.value = 'forged';")
    page.click("allocate")
    assert "security token does not match" in page.text()
    assert not box.client("mine").describe_addresses()["Addresses"]

    # another account's instance, by id in the URL
    page.open(f"/instances/{theirs}/output")
    assert "InvalidInstanceID.NotFound" in page.text()
    page.open("/admin")
    assert "administrator may see this page" in page.text()
    page.sign_out()

    # five wrong passwords lock the user out, the right password included
    for _ in range(5):
        page.sign_in("mine", "a wrong guess")
        assert "not right" in page.text()
    page.sign_in("mine", PASSWORD)
    assert "Too many failed sign-ins" in page.text()
