"""Reports opened in a real browser: Debian's chromium, driven by Playwright (its own browser download does
not work offline; `make test` installs chromium). Screenshots go to test-artifacts/reports/, which CI keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import ConsoleMessage, Request, sync_playwright

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "reports"
CHROMIUM = "/usr/bin/chromium"
WIDTH = 1280

_PLOTS = """() => [...document.querySelectorAll('figure.plot svg')].map(svg => {
  const marks = [...svg.querySelectorAll('[id^="data-"]')].filter(g => {
    const box = g.getBBox();
    return g.querySelector('path, use') !== null && (box.width > 0 || box.height > 0);
  });
  const rect = svg.getBoundingClientRect();
  return {marks: marks.length, width: rect.width, height: rect.height};
})"""
_IMAGES = "() => [...document.images].map(i => ({complete: i.complete, width: i.naturalWidth, src: i.src.slice(0, 22)}))"


@dataclass
class PageSeen:
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL the page asked for (data: URIs are not requests)
    plots: list[dict[str, Any]] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    scroll_width: int = 0
    sections: list[str] = field(default_factory=list)
    screenshot: Path | None = None


def open_page(url: str, name: str, headers: dict[str, str] | None = None) -> PageSeen:
    """Open `url` at a 1280-pixel-wide window, record what a person's browser would show, save a screenshot."""
    seen = PageSeen()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            seen.console_errors.append(message.text)

    def on_request(request: Request) -> None:
        if not request.url.startswith("data:"):
            seen.requests.append(request.url)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": WIDTH, "height": 900}, extra_http_headers=headers or {})
            page = context.new_page()
            page.on("console", on_console)
            page.on("pageerror", lambda error: seen.console_errors.append(str(error)))
            page.on("request", on_request)
            response = page.goto(url, wait_until="load")
            assert response is None or response.ok, f"{url}: {response.status if response else ''}"
            seen.plots = page.evaluate(_PLOTS)
            seen.images = page.evaluate(_IMAGES)
            seen.scroll_width = page.evaluate("() => document.documentElement.scrollWidth")
            seen.sections = page.evaluate("() => [...document.querySelectorAll('main > section')].map(s => s.id)")
            seen.screenshot = ARTIFACTS / f"{name}.png"
            page.screenshot(path=str(seen.screenshot), full_page=True)
        finally:
            browser.close()
    return seen


def assert_readable(seen: PageSeen, url: str, images: int | None = None) -> None:
    """No console error, nothing fetched but the page, every plot drawn with data, every image decoded, and
    nothing wider than the window."""
    assert seen.console_errors == [], seen.console_errors
    assert seen.requests == [url], seen.requests
    assert seen.plots and all(p["marks"] > 0 and p["width"] > 300 and p["height"] > 50 for p in seen.plots), seen.plots
    assert all(i["complete"] and i["width"] > 0 and i["src"].startswith("data:image/png") for i in seen.images), \
        seen.images
    if images is not None:
        assert len(seen.images) == images
    assert seen.scroll_width <= WIDTH, seen.scroll_width
    assert seen.screenshot is not None and seen.screenshot.stat().st_size > 10_000
