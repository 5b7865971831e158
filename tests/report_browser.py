"""Open a Snakemake HTML report in headless Chromium: take a screenshot, or dump the DOM after the
report's JavaScript has rendered, optionally with one category's list in the side bar and one of
its results shown (the report is a JavaScript app without addressable pages, so a copy of it gets
a script that selects them once loaded). An HTML result is shown in an iframe; the dump then
also holds the iframe's rendered document (read with web security off: it is a data: URL).

Usage: python tests/report_browser.py report.html out.png [result-path-suffix [category]]
       python tests/report_browser.py report.html out.html [result-path-suffix [category]]  (DOM)
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# headless, no sandbox (CI runs as root), nothing fetched from the network, no first-run pages;
# every run gets a fresh --user-data-dir
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run")
FRAME_ID = "report-browser-frame"  # the <pre> holding the shown iframe's document in a DOM dump

_SHOW = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const category = %s, subcategory = %s, suffix = %s, kind = %s, capture = %s;
  if (subcategory) app.setView({navbarMode: "subcategory", category: category, subcategory: subcategory});
  else if (category) app.showCategory(category);
  const path = suffix ? Object.keys(results).find(k => k.endsWith(suffix)) : null;
  // after React has applied the category (setView merges into the state of its last render)
  if (path && kind) setTimeout(() => app.setView({content: kind, contentPath: results[path].data_uri,
                                          resultPath: path}), 300);
  if (capture) setTimeout(() => {  // the shown iframe's rendered document, for a DOM dump
    const frame = document.querySelector("iframe"), out = document.createElement("pre");
    out.id = "%s"; out.hidden = true; out.dataset.iframe = frame ? "yes" : "no";
    const doc = frame ? frame.contentDocument : null, table = doc ? doc.querySelector("table") : null;
    if (table) out.dataset.tableWidth = String(table.getBoundingClientRect().width);
    out.textContent = doc && doc.documentElement ? doc.documentElement.outerHTML : "";
    document.body.appendChild(out);
  }, 1500);
}, 300));
</script>"""


def chromium() -> str | None:
    """Path of a Chromium binary, or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


# how the report shows a result, by suffix: in an iframe or as an image (other files: a download)
VIEWS = {".html": "html", ".htm": "html", ".pdf": "pdf", ".png": "img", ".jpg": "img", ".jpeg": "img",
         ".svg": "img"}


def _content_kind(result_suffix: str | None) -> str | None:
    """How the report shows a result ("html", "pdf", "img"), None for a download only."""
    return VIEWS.get(Path(result_suffix or "").suffix.lower())


def _page(report: Path, page: Path, result_suffix: str | None, category: str | None, capture: bool,
          subcategory: str | None = None) -> Path:
    """``report``, or a copy at ``page`` with the script that shows the (sub)category and result."""
    if not (result_suffix or category or capture):
        return report
    text = report.read_text()
    cut = text.rfind("</body>")
    values = (category, subcategory, result_suffix, _content_kind(result_suffix), capture)
    script = _SHOW % (*(json.dumps(v) for v in values), FRAME_ID)
    page.write_text(text[:cut] + script + text[cut:])
    return page


def _run(args: list[str], timeout: int) -> str:
    """Run Chromium with ``args`` and a fresh profile; its stdout."""
    browser = chromium()
    if browser is None:
        raise FileNotFoundError("no chromium on PATH (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="report-browser-") as profile:
        run = subprocess.run([browser, *BROWSER_FLAGS, f"--user-data-dir={profile}", *args], check=True,
                             capture_output=True, text=True, timeout=timeout)
    return run.stdout


def screenshot(report: Path, out: Path, result_suffix: str | None = None, category: str | None = None,
               subcategory: str | None = None, size: tuple[int, int] = (1400, 1000),
               timeout: int = 120) -> Path:
    """Render ``report`` to ``out``, showing the result whose path ends with ``result_suffix``
    and the list of results of ``category`` (and ``subcategory``) in the side bar (if given)."""
    page = _page(report, out.with_suffix(".html"), result_suffix, category, False, subcategory)
    _run([f"--screenshot={out}", f"--window-size={size[0]},{size[1]}", "--virtual-time-budget=5000",
          page.resolve().as_uri()], timeout)
    return out


def dump_dom(report: Path, page: Path, result_suffix: str | None = None, category: str | None = None,
             size: tuple[int, int] = (1400, 1000), timeout: int = 120) -> tuple[str, str]:
    """The report's DOM after its JavaScript rendered ``category`` and the result ending with
    ``result_suffix`` (the script-carrying copy is written to ``page``), and the rendered
    document of the iframe it shows ("" when none). Web security is off for this local page
    only, so that the script may read the data: URL iframe."""
    shown = _page(report, page, result_suffix, category, capture=True)
    dom = _run(["--disable-web-security", f"--window-size={size[0]},{size[1]}", "--virtual-time-budget=8000",
                "--dump-dom", shown.resolve().as_uri()], timeout)
    match = re.search(rf'<pre id="{FRAME_ID}"[^>]*>(.*?)</pre>', dom, re.S)
    return dom, html.unescape(match.group(1)) if match else ""


def report_categories(report_html: str) -> dict[str, dict[str, list[str]]]:
    """The report's results by category and subcategory ("Other" = none), as its page lists them."""
    start = report_html.index("var categories =") + len("var categories =")
    return json.JSONDecoder().raw_decode(report_html[start:].lstrip())[0]


def save_views(report: Path, out_dir: Path, views: dict[str, tuple[str | None, ...]],
               copy_to: str | None = None) -> dict[str, Path]:
    """A screenshot ``<out_dir>/<name>.png`` of each view ``name: (result suffix, category[,
    subcategory])``; also copied into the folder ``copy_to`` (e.g. $REPORT_SCREENSHOTS) when given."""
    shots = {name: screenshot(report, out_dir / f"{name}.png", *view) for name, view in views.items()}
    if copy_to:
        Path(copy_to).mkdir(parents=True, exist_ok=True)
        for shot in shots.values():
            shutil.copy(shot, Path(copy_to) / shot.name)
    return shots


class _Tables(HTMLParser):
    """Collects the text of the header cells (<th>) of every <table>."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "th":
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "th" and self._cell is not None and self.tables:
            self.tables[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table_headers(document: str) -> list[list[str]]:
    """The header cells' text (whitespace collapsed) of each <table> of an HTML document."""
    parser = _Tables()
    parser.feed(document)
    return parser.tables


if __name__ == "__main__":
    args = sys.argv[3:] + [None, None]
    target = Path(sys.argv[2])
    if target.suffix == ".html":
        frame = dump_dom(Path(sys.argv[1]), target.with_suffix(".page.html"), args[0] or None, args[1])[1]
        target.write_text(frame)
    else:
        screenshot(Path(sys.argv[1]), target, args[0] or None, args[1])
