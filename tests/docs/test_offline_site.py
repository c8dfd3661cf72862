"""The site works offline: every script, style and font a page needs is served by the site itself.

Material for MkDocs fetches mermaid from unpkg.com unless the page already has it, and links
Google Fonts unless ``theme.font`` is false; mkdocs.yml serves a pinned mermaid from
``docs/assets/vendor/`` and turns the fonts off. Here each page with a diagram is opened in
Chromium with every request to a host other than the local server refused, and each diagram
must have been drawn: an SVG in place of the source text, and not mermaid's "Syntax error" one.

Material draws a diagram into a closed shadow root; the init script below opens it, so the test
can look inside.

The screenshot of chapter 2's diagram, drawn this way, is docs/img/offline-diagram.png: run this
test with ``TASKLAB_WRITE_SCREENSHOT=1`` to write it again.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.docs.test_site import build
from tests.support import LOOPBACK_HOSTS, chromium_browser

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

#: The pages with diagrams: every Markdown page of the site outside docs/diffs/ and the vendor folder.
PAGES = sorted(
    path
    for path in DOCS.rglob("*.md")
    if "diffs" not in path.parts and "vendor" not in path.parts and "```mermaid" in path.read_text()
)

OPEN_SHADOW_ROOTS = """
const attach = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) { return attach.call(this, { ...init, mode: "open" }); };
"""

#: What the page shows once mermaid has run: the diagrams drawn, and any still waiting as source.
DIAGRAMS = """
() => ({
  drawn: [...document.querySelectorAll("div.mermaid")].map(d => d.shadowRoot ? d.shadowRoot.innerHTML : ""),
  waiting: document.querySelectorAll("pre.mermaid").length,
})
"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


def page_url(path: Path) -> str:
    relative = path.relative_to(DOCS).with_suffix("")
    return "" if relative.name == "index" else f"{relative.as_posix()}/"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The built site, served on a free loopback port: its address and its folder."""
    directory = tmp_path_factory.mktemp("offline") / "site"
    result = build(ROOT / "mkdocs.yml", directory)
    assert result.returncode == 0, result.stderr[-3000:]
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", directory
    finally:
        server.shutdown()
        server.server_close()


def test_the_pages_with_diagrams_are_found() -> None:
    """Guards the test below against passing on no page at all."""
    names = {path.name for path in PAGES}
    assert {"index.md", "01-basic.md", "06-docker.md"} <= names


def test_the_built_pages_name_no_cdn(site: tuple[str, Path]) -> None:
    """The cheap check, without a browser: no page links a script, style or font on another host."""
    build_dir = site[1]
    remote = re.compile(r"""<(?:script|link)[^>]+(?:src|href)="(https?:)?//[^"]+""")
    offenders = [
        f"{page.relative_to(build_dir)}: {match.group(0)}"
        for page in build_dir.rglob("*.html")
        for match in remote.finditer(page.read_text())
    ]
    assert not offenders, "\n".join(offenders[:10])


@pytest.mark.timeout(180)
def test_every_diagram_renders_with_the_network_refused(site: tuple[str, Path], tmp_path: Path) -> None:
    url = site[0]
    refused: list[str] = []

    def only_local(route, request) -> None:  # type: ignore[no-untyped-def]
        if urlsplit(request.url).hostname in LOOPBACK_HOSTS:
            route.continue_()
        else:
            refused.append(request.url)
            route.abort()

    counts: dict[str, int] = {}
    with chromium_browser() as browser:
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        context.add_init_script(OPEN_SHADOW_ROOTS)
        context.route("**/*", only_local)
        page = context.new_page()
        for path in PAGES:
            expected = path.read_text().count("```mermaid")
            page.goto(url + page_url(path), wait_until="load")
            page.wait_for_function(
                f"() => document.querySelectorAll('div.mermaid').length >= {expected}"
                " && document.querySelectorAll('pre.mermaid').length === 0",
                timeout=15_000,
            )
            state = page.evaluate(DIAGRAMS)
            drawn = [svg for svg in state["drawn"] if "<svg" in svg and "Syntax error" not in svg]
            assert len(drawn) == expected and state["waiting"] == 0, (path.name, expected, state["waiting"])
            counts[path.name] = len(drawn)
        page.goto(url + "02-queue/", wait_until="load")
        page.wait_for_function("() => document.querySelectorAll('pre.mermaid').length === 0", timeout=15_000)
        screenshot = DOCS / "img" if os.environ.get("TASKLAB_WRITE_SCREENSHOT") else tmp_path
        page.locator("div.mermaid").first.screenshot(path=str(screenshot / "offline-diagram.png"))
        context.close()

    assert not refused, f"the site asked the network for: {refused}"
    assert sum(counts.values()) >= len(PAGES), counts
    print("diagrams drawn offline:", counts)
