"""Screenshots of the built docs site with headless Chromium: the front page and a guide.

``make docs-screenshots`` builds the site (``.kinfer/site``), serves it on a free loopback port
for as long as this takes, and writes ``.kinfer/screenshots/<page>.png``: what a reader sees,
for a review or an issue note, without a desktop.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / ".kinfer" / "site"
OUT = ROOT / ".kinfer" / "screenshots"
PAGES = {"front-page": "", "guide-operating": "guides/operating/", "reference-errors": "reference/errors/"}
"""Screenshot name -> path of the page in the site."""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """No line per request: the script prints what it wrote."""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        sys.exit("error [unavailable]: chromium is missing (`make docs-screenshots` installs it)")
    return found


def shoot(browser: str, url: str, png: Path, size: str = "1280,1400") -> None:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]
    done = subprocess.run(
        [browser, *flags, f"--window-size={size}", f"--screenshot={png}", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0 or not png.exists():
        sys.exit(f"error [internal]: chromium could not take {url}: {done.stderr[-800:]}")


def main() -> None:
    if not (SITE / "index.html").exists():
        sys.exit("error [unavailable]: no built site: run `make docs-build` first")
    browser = chromium()
    OUT.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(QuietHandler, directory=str(SITE))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        for name, path in PAGES.items():
            png = OUT / f"{name}.png"
            shoot(browser, base + path, png)
            print(f"wrote {png.relative_to(ROOT)} ({base + path})")
        server.shutdown()


if __name__ == "__main__":
    main()
