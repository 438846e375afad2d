"""Open a report in a real browser: headless Chromium over the DevTools protocol.

``check_page(path)`` starts ``chromium --headless`` on a private profile,
loads the page from its file, and asks the page itself what a reader would
see: every ``<img>`` with its ``naturalWidth`` (0: it did not load or decode),
every ``<table>`` with its rows, and every console error, uncaught
exception or failed load the browser logged.  With ``screenshot`` it saves a
PNG of the first screen (``VIEWPORT``).  The DevTools protocol is spoken over
websocket-client; Chromium is Debian's ``chromium`` (scripts/setup.sh
installs both).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import websocket

VIEWPORT = (1280, 900)  # the first screen of the screenshot, CSS pixels
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DEVTOOLS_RE = re.compile(r"DevTools listening on (ws://\S+)")
# what the page reports about itself, as JSON
PAGE_FACTS = """JSON.stringify({
  title: document.title,
  images: Array.from(document.images).map(i => ({
      src: i.getAttribute('src').slice(0, 80), complete: i.complete,
      width: i.naturalWidth, height: i.naturalHeight})),
  tables: Array.from(document.querySelectorAll('table')).map(t => t.rows.length),
  svgs: document.querySelectorAll('svg').length})"""


class BrowserError(RuntimeError):
    """Chromium could not be found, started or driven."""


@dataclasses.dataclass
class PageCheck:
    title: str
    images: list[dict[str, Any]]  # src (first 80 characters), complete, width, height
    tables: list[int]  # rows of every table
    errors: list[str]  # console errors, exceptions, failed loads
    screenshot: Path | None = None

    @property
    def broken_images(self) -> list[dict[str, Any]]:
        return [i for i in self.images if not i["complete"] or i["width"] <= 0]

    @property
    def ok(self) -> bool:
        return not self.errors and not self.broken_images

    def problems(self) -> list[str]:
        return self.errors + [f"image did not load: {i['src']}" for i in self.broken_images]


def find_chromium() -> str | None:
    env = os.environ.get("USB4_CHROMIUM")
    if env:
        return env
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


class _DevTools:
    """One page's DevTools connection: commands, and the events seen so far."""

    def __init__(self, url: str, timeout: float):
        self.ws = websocket.create_connection(url, timeout=timeout)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            if "method" in message:
                self.events.append(message)

    def wait_for(self, event: str, deadline: float) -> None:
        while not any(e["method"] == event for e in self.events):
            if time.monotonic() > deadline:
                raise BrowserError(f"no {event} before the timeout")
            message = json.loads(self.ws.recv())
            if "method" in message:
                self.events.append(message)

    def close(self) -> None:
        self.ws.close()


def _errors(events: list[dict[str, Any]]) -> list[str]:
    """Console errors, uncaught exceptions and failed loads among the events."""
    found = []
    for e in events:
        p = e.get("params", {})
        if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            found.append("console: " + " ".join(str(a.get("value", a.get("description", "")))
                                                for a in p.get("args", [])))
        elif e["method"] == "Runtime.exceptionThrown":
            details = p.get("exceptionDetails", {})
            found.append("exception: " + str(details.get("exception", {}).get(
                "description", details.get("text", ""))))
        elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            entry = p["entry"]
            found.append(f"{entry.get('source', 'log')}: {entry.get('text', '')} "
                         f"{entry.get('url', '')}".strip())
    return found


def _start(chromium: str, profile: str, timeout: float) -> tuple[subprocess.Popen, str]:
    """Chromium headless on a blank page; (process, its browser websocket URL)."""
    argv = [chromium, "--headless", "--disable-gpu", "--no-first-run", "--no-sandbox",
            "--disable-extensions", "--allow-file-access-from-files",
            f"--user-data-dir={profile}", "--remote-debugging-port=0",
            f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "about:blank"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        found = DEVTOOLS_RE.search(line)
        if found:
            # keep reading what it says, so a chatty browser never blocks on a full pipe
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, found.group(1)
    proc.kill()
    proc.wait()
    raise BrowserError(f"{chromium} gave no DevTools address: {''.join(seen)[-500:]}")


def _page_url(browser_url: str, timeout: float) -> str:
    """The websocket URL of a new page target."""
    browser = _DevTools(browser_url, timeout)
    try:
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
    finally:
        browser.close()
    return browser_url.split("/devtools/")[0] + f"/devtools/page/{target}"


def check_page(path: Path, screenshot: Path | None = None, timeout: float = 60.0,
               settle: float = 0.5) -> PageCheck:
    """Load a page file in headless Chromium; what loaded, what failed."""
    chromium = find_chromium()
    if chromium is None:
        raise BrowserError("chromium not found (scripts/setup.sh installs Debian's "
                           "chromium; USB4_CHROMIUM names another)")
    profile = tempfile.mkdtemp(prefix="usb4-chromium-")
    proc, browser_url = _start(chromium, profile, timeout)
    try:
        page = _DevTools(_page_url(browser_url, timeout), timeout)
        try:
            return _inspect(page, Path(path).resolve(), screenshot, timeout, settle)
        finally:
            page.close()
    except (OSError, websocket.WebSocketException) as exc:
        raise BrowserError(f"driving {chromium}: {type(exc).__name__}: {exc}") from None
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _inspect(page: _DevTools, path: Path, screenshot: Path | None, timeout: float,
             settle: float) -> PageCheck:
    deadline = time.monotonic() + timeout
    for domain in ("Page", "Runtime", "Log"):
        page.call(f"{domain}.enable")
    page.call("Emulation.setDeviceMetricsOverride", width=VIEWPORT[0], height=VIEWPORT[1],
              deviceScaleFactor=1, mobile=False)
    page.call("Page.navigate", url=path.as_uri())
    page.wait_for("Page.loadEventFired", deadline)
    time.sleep(settle)  # late console messages of the page's own scripts
    facts = json.loads(page.call("Runtime.evaluate", expression=PAGE_FACTS,
                                 returnByValue=True)["result"]["value"])
    shot = None
    if screenshot is not None:
        data = page.call("Page.captureScreenshot", format="png")["data"]
        screenshot.write_bytes(base64.b64decode(data))
        shot = screenshot
    return PageCheck(facts["title"], facts["images"], facts["tables"], _errors(page.events),
                     shot)
