#!/usr/bin/env python3
"""Takes a screenshot of a running registry dashboard: `scripts/screenshot.py URL OUT.png`.

Uses Debian's chromium (never a downloaded browser) through playwright; waits until the page
has refreshed from the registry a few times so the tables and charts are drawn.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class ScreenshotSettings(BaseSettings):
    """RELEARN_CHROMIUM: the browser that takes the picture."""

    model_config = SettingsConfigDict(env_prefix="RELEARN_", extra="ignore")

    chromium: str = "/usr/bin/chromium"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the dashboard, e.g. http://127.0.0.1:8080/")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--model-type", help="the tab to show (default: the first)")
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=1400)
    parser.add_argument("--refreshes", type=int, default=3, help="refreshes to wait for")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds")
    parser.add_argument("--viewport-only", action="store_true", help="not the full page")
    parser.add_argument("--chromium", default=ScreenshotSettings().chromium)
    args = parser.parse_args(argv)

    from playwright.sync_api import Error, sync_playwright

    url = args.url if not args.model_type else f"{args.url.split('#')[0]}#{args.model_type}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": args.width, "height": args.height})
                page.goto(url, timeout=args.timeout * 1000)
                page.wait_for_function(
                    f"Number(document.body.dataset.refreshes) >= {args.refreshes}",
                    timeout=args.timeout * 1000,
                )
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out), full_page=not args.viewport_only)
            finally:
                browser.close()
    except Error as exc:
        print(f"screenshot failed: {exc}", file=sys.stderr)
        return 1
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
