"""Open a Snakemake HTML report in headless Chromium and take a screenshot, optionally with
one of its results shown (the report is a JavaScript app without addressable pages, so a copy
of it gets a script that selects the result once loaded).

Usage: python tests/report_browser.py report.html out.png [result-path-suffix [category]]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")

_SHOW = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const category = %s, suffix = %s;
  if (category) app.showCategory(category);
  const path = suffix ? Object.keys(results).find(k => k.endsWith(suffix)) : null;
  // after React has applied the category (setView merges into the state of its last render)
  if (path) setTimeout(() => app.setView({content: "img", contentPath: results[path].data_uri,
                                          resultPath: path}), 300);
}, 300));
</script>"""


def chromium() -> str | None:
    """Path of a Chromium binary, or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(report: Path, out: Path, result_suffix: str | None = None, category: str | None = None,
               size: tuple[int, int] = (1400, 1000), timeout: int = 120) -> Path:
    """Render ``report`` to ``out``, showing the result whose path ends with ``result_suffix``
    and the list of results of ``category`` in the side bar (if given)."""
    browser = chromium()
    if browser is None:
        raise FileNotFoundError("no chromium on PATH (apt-get install -y chromium)")
    page = report
    if result_suffix or category:
        html = report.read_text()
        cut = html.rfind("</body>")
        page = out.with_suffix(".html")
        page.write_text(html[:cut] + _SHOW % (json.dumps(category), json.dumps(result_suffix)) + html[cut:])
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={out}",
                    f"--window-size={size[0]},{size[1]}", "--virtual-time-budget=5000",
                    page.resolve().as_uri()], check=True, capture_output=True, timeout=timeout)
    return out


if __name__ == "__main__":
    args = sys.argv[3:] + [None, None]
    screenshot(Path(sys.argv[1]), Path(sys.argv[2]), args[0] or None, args[1])
