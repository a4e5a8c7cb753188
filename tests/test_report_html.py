"""``fwbench report --format html``: one self-contained page with the markdown report's content, plots
embedded, sortable tables, nothing loaded from anywhere, hostile text inert; and the page opened in a real
headless Chromium (screenshot, title, tables, images loaded, no console error, a click on a header sorts).

The browser is driven through the Chrome DevTools protocol over ``--remote-debugging-pipe`` (standard
library only: no driver, no websocket package). The browser test skips, saying why, where no Chromium is
installed (``.ci/run`` installs Debian's ``chromium``); ``FWBENCH_CHROMIUM`` names a binary to use.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from conftest import invoke
from fwbench.report import html as html_report
from fwbench.report.write import write_report

GOLDEN = Path(__file__).resolve().parent / "golden"

# what the page may hold: the body's allow-list, plus the page's own furniture
PAGE_TAGS = set(html_report.ALLOWED) | {"html", "head", "meta", "title", "style", "body", "main", "script"}


class Tags(HTMLParser):
    """Every start tag of a page with its attributes, and its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Tags:
    p = Tags()
    p.feed(page)
    p.close()
    return p


def assert_inert(page: str) -> Tags:
    """Only allow-listed tags, no event handler, no script but ours, links only within the page, images
    only embedded PNGs, and nothing that names a place on the network."""
    p = parse(page)
    assert {t for t, _ in p.tags} <= PAGE_TAGS, {t for t, _ in p.tags} - PAGE_TAGS
    for tag, attrs in p.tags:
        if tag != "meta":
            assert set(attrs) <= html_report.ALLOWED.get(tag, frozenset()) | {"lang", "charset"}, (tag, attrs)
        assert not [a for a in attrs if a.lower().startswith("on")], (tag, attrs)
        assert not [v for a, v in attrs.items() if a in ("href", "src", "action", "formaction", "style")
                    and "javascript:" in v.lower()], (tag, attrs)
        if tag == "a":
            assert attrs.get("href", "#").startswith("#"), attrs
        if tag == "img":
            assert attrs["src"].startswith("data:image/png;base64,"), attrs["src"][:80]
    assert [t for t, _ in p.tags].count("script") == 1 and page.count("<script") == 1
    assert not re.search(r"""(?:src|href|action|srcset|poster)\s*=\s*["']?\s*(?:https?:|//)""", page, re.I)
    assert "@import" not in page and "url(" not in page
    return p


# ---------------------------------------------------------------- the page, without a browser

def test_cli_writes_one_self_contained_page(cli, tmp_path: Path) -> None:
    out = tmp_path / "D"
    r = invoke(cli, "report", str(GOLDEN / "tiny_all.json"), "--format", "html", "--out-dir", str(out))
    assert r.exit_code == 0, r.output
    assert [p.name for p in out.iterdir()] == ["report.html"]  # plots embedded: no plots/ folder
    page = (out / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?https?://""", page) and "http://" not in page
    imgs = re.findall(r"<img [^>]*>", page)
    assert len(imgs) >= 2 and all('src="data:image/png;base64,' in i for i in imgs)
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    assert "<title>fwbench report</title>" in page
    assert_inert(page)
    assert f'content="{html_report.csp()}"' in page


def test_same_content_as_markdown(tmp_path: Path) -> None:
    write_report([GOLDEN / "tiny_all.json"], tmp_path / "md", fmt="markdown", lang="zh", plots=False)
    write_report([GOLDEN / "tiny_all.json"], tmp_path / "h", fmt="html", lang="zh", plots=False)
    md = (tmp_path / "md" / "report.md").read_text(encoding="utf-8")
    page = (tmp_path / "h" / "report.html").read_text(encoding="utf-8")
    assert '<html lang="zh-CN">' in page
    text = " ".join(parse(page).text)
    for line in md.splitlines():
        if line.startswith("#"):  # every heading, as text
            assert line.lstrip("# ").replace("\\", "") in text, line
    tables = len(re.findall(r"^\|(?:\s*:?-+:?\s*\|)+\s*$", md, re.M))  # delimiter rows
    assert page.count("<table>") == tables > 0
    rows = len([ln for ln in md.splitlines() if ln.startswith("| ")]) - tables  # minus header rows
    assert page.count("<tr>") - page.count("<thead>") == rows
    # numbered lists keep their first number (sane_lists: an <ol start>), e.g. source notes 9, 10, ...
    for first in re.findall(r"(?:^|\n\n)(\d+)\. ", md):
        assert first == "1" or f'<ol start="{first}">' in page, first


def test_no_plots(tmp_path: Path) -> None:
    written = write_report([GOLDEN / "tiny_partial.json"], tmp_path, fmt="html", plots=False)
    assert written == [tmp_path / "report.html"]
    assert "<img" not in written[0].read_text(encoding="utf-8")


def test_hostile_names_are_inert_in_html(tmp_path: Path) -> None:
    from test_hostile_text import hostile_results

    src = hostile_results(tmp_path)
    write_report([src], tmp_path / "rep", fmt="html")  # plots too: their captions are hostile
    page = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    p = assert_inert(page)
    text = " ".join(p.text)
    assert "<img src=x onerror=alert(1)>" in text and "<script>alert(1)</script>" in text  # shown as text
    assert "[a](javascript:alert(1))$x^2$ =HYPERLINK(1)" in text  # as itself: no markdown escape left over
    main = " ".join(parse(page.split("<main>")[1].split("</main>")[0]).text)
    assert "\\" not in main, re.findall(r".{30}\\.{30}", main)
    assert len([t for t, _ in p.tags if t == "img"]) >= 2


def test_raw_html_and_links_in_markdown_are_not_honoured() -> None:
    # even markdown that escaped nothing: only <br> is honoured, links stay in the page, images must be ours
    md = ("# T\n\n<div onclick=alert(1)>block</div>\n\n<script>alert(1)</script>\n\n"
          "x <img src=x onerror=alert(1)> <b>b</b> <br> <br/> [a](javascript:alert(1)) [b](https://evil.example)"
          " <https://evil.example> ![i](https://evil/x.png) ![ok](plots/a.png) [c](#here) &amp; &lt;\n\n"
          "| h <br> | <i>x</i> |\n|:--:|--:|\n| 1 | 2 |\n")
    page = html_report.page(md, {"plots/a.png": b"\x89PNG fake"})
    p = assert_inert(page)
    assert [t for t, _ in p.tags].count("br") == 3 and [t for t, _ in p.tags].count("img") == 1
    text = " ".join(p.text)
    assert "<div onclick=alert(1)>block</div>" in text and "<img src=x onerror=alert(1)>" in text
    assert re.findall(r'href="[^"]*"', page) == ['href="#here"']
    assert 'style="text-align: center;"' in page or 'align="center"' in page  # alignment kept


def test_csp_pins_the_one_script() -> None:
    import hashlib

    page = html_report.page("# x\n")
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in page and "default-src 'none'" in page


def test_footnotes_render(tmp_path: Path) -> None:
    page = html_report.page("# x\n\n| a | b |\n|---|---|\n| 1 | v[^1] |\n\n[^1]: run.json · cnn/tf-graph/cpu\n")
    assert_inert(page)
    assert 'href="#fn:1"' in page and "run.json · cnn/tf-graph/cpu" in page


# ---------------------------------------------------------------- the page in a real browser

def chromium() -> str | None:
    names = [os.environ.get("FWBENCH_CHROMIUM", "")] + ["chromium", "chromium-browser", "google-chrome",
                                                        "google-chrome-stable", "chrome", "chrome-headless-shell"]
    return next((shutil.which(n) for n in names if n and shutil.which(n)), None)


class Browser:
    """A headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4 of the browser,
    NUL-separated JSON messages), with one page attached."""

    def __init__(self, exe: str, profile: Path, size: tuple[int, int] = (1280, 900)) -> None:
        to_r, self._w = os.pipe()
        self._r, from_w = os.pipe()
        # the browser's ends move to fds >= 10, then to exactly 3 and 4 in the child (dup2 clears CLOEXEC)
        hi_r, hi_w = fcntl.fcntl(to_r, fcntl.F_DUPFD_CLOEXEC, 10), fcntl.fcntl(from_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_r), os.close(from_w)

        def fds() -> None:
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        args = [exe, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--disable-extensions", "--no-first-run", "--no-default-browser-check",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", "--mute-audio", f"--user-data-dir={profile}",
                f"--window-size={size[0]},{size[1]}", "about:blank"]
        self._err = open(profile.parent / "chromium-stderr.txt", "wb")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(args, preexec_fn=fds, close_fds=False, stdin=subprocess.DEVNULL,
                                     stdout=self._err, stderr=self._err)
        os.close(hi_r), os.close(hi_w)
        self._buf, self._id, self.events = b"", 0, []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=self.session)
        self.call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1,
                  mobile=False, session=self.session)

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed the pipe: {self.stderr()}")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, session: str | None = None, timeout: float = 20.0, **params: Any) -> Any:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params} | ({"sessionId": session} if session else {})
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._message(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]
            self.events.append(m)

    def wait_for(self, event: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            m = self._message(deadline)
            self.events.append(m)
            if m.get("method") == event:
                return m

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url, session=self.session)
        self.wait_for("Page.loadEventFired")

    def js(self, expression: str) -> Any:
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True,
                      session=self.session)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def click(self, element: str) -> None:
        """A real mouse click (press and release) at the middle of the element (a JS expression)."""
        x, y = self.js(f"(() => {{ const e = {element}; "
                       "e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect(); "
                       "return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1,
                      session=self.session)

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors (a blocked load, a CSP violation)."""
        out = []
        for m in self.events:
            p = m.get("params", {})
            if m.get("method") == "Runtime.exceptionThrown":
                out.append(json.dumps(p.get("exceptionDetails"))[:500])
            elif m.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(json.dumps(p.get("args"))[:500])
            elif m.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(json.dumps(p["entry"])[:500])
        return out

    def requests(self) -> list[str]:
        return [m["params"]["request"]["url"][:60] for m in self.events if m.get("method") == "Network.requestWillBeSent"]

    def stderr(self) -> str:
        self._err.flush()
        return Path(self._err.name).read_text(errors="replace")[-2000:]

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 (closing anyway)
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self._w), os.close(self._r)
        self._err.close()


UNITS = {"ns": 1e-9, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def value(cell: str) -> float:
    m = re.match(r"([\d,.]+)\s*(ns|µs|ms|s|B|KiB|MiB|GiB)?(?![A-Za-z])", cell)
    assert m, cell
    return float(m.group(1).replace(",", "")) * UNITS.get(m.group(2) or "", 1.0)


def column(b: Browser, table: int, col: int) -> list[str]:
    return b.js(f"Array.from(document.querySelectorAll('table')[{table}].tBodies[0].rows)"
                f".map(r => r.cells[{col}].textContent.trim())")


def header(b: Browser, prefix: str) -> tuple[int, int, str]:
    """The first table with a header cell starting with ``prefix``: (table, column, JS for the cell)."""
    t, c = b.js(f"(() => {{ const ts = Array.from(document.querySelectorAll('table')); for (let t = 0; "
                f"t < ts.length; t++) {{ const hs = Array.from(ts[t].tHead.rows[0].cells); const c = hs.findIndex("
                f"h => h.textContent.trim().startsWith({json.dumps(prefix)})); if (c >= 0) return [t, c]; }} "
                f"return [-1, -1]; }})()")
    assert t >= 0, f"no table has a header {prefix!r}"
    return t, c, f"document.querySelectorAll('table')[{t}].tHead.rows[0].cells[{c}]"


def test_html_report_in_headless_chromium(tmp_path: Path) -> None:
    exe = chromium()
    if exe is None:
        pytest.skip("no Chromium found (install Debian's `chromium` package, as .ci/run does, or set "
                    "FWBENCH_CHROMIUM to a Chromium/Chrome binary)")
    started = time.monotonic()
    write_report([GOLDEN / "tiny_all.json"], tmp_path / "rep", fmt="html")
    page = tmp_path / "rep" / "report.html"
    n_tables, n_images = (page.read_text(encoding="utf-8").count(tag) for tag in ("<table>", "<img "))
    b = Browser(exe, tmp_path / "profile")
    try:
        b.open(page.as_uri())
        assert b.js("document.title") == "fwbench report"
        assert b.js("document.querySelectorAll('table').length") == n_tables > 0
        assert b.js("document.querySelectorAll('th.sortable').length") > n_tables
        images = b.js("Promise.all(Array.from(document.images).map(i => i.decode().then(() => i, () => i)))"
                      ".then(a => a.map(i => [i.complete, i.naturalWidth, i.naturalHeight]))")
        assert len(images) == n_images > 0 and all(ok and w > 0 and h > 0 for ok, w, h in images), images

        shot = base64.b64decode(b.call("Page.captureScreenshot", format="png", session=b.session)["data"])
        (tmp_path / "screenshot.png").write_bytes(shot)
        assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000
        width, height = int.from_bytes(shot[16:20], "big"), int.from_bytes(shot[20:24], "big")
        assert (width, height) == (1280, 900)
        import matplotlib.image

        pixels = matplotlib.image.imread(tmp_path / "screenshot.png")
        assert len({tuple(px) for px in pixels.reshape(-1, pixels.shape[-1])[::97]}) > 20  # not a blank page

        # the first performance table: a click on "step" sorts by time (µs < ms < s), twice reverses
        t, step, th = header(b, "step")
        runner = header(b, "runner")[1]
        before = column(b, t, step)
        pairs = dict(zip(column(b, t, runner), before))
        b.click(th)
        asc = column(b, t, step)
        assert sorted(asc) == sorted(before) and [value(c) for c in asc] == sorted(value(c) for c in asc), asc
        assert b.js(f"{th}.getAttribute('aria-sort')") == "ascending"
        b.click(th)
        desc = column(b, t, step)
        assert [value(c) for c in desc] == sorted((value(c) for c in desc), reverse=True), desc
        assert b.js(f"{th}.getAttribute('aria-sort')") == "descending"
        assert dict(zip(column(b, t, runner), desc)) == pairs  # whole rows move: each runner keeps its time
        t, mem, th = header(b, "peak mem")
        b.click(th)  # sizes: MiB before GiB
        mems = column(b, t, mem)
        assert [value(c) for c in mems] == sorted(value(c) for c in mems), mems
        t, runner, th = header(b, "runner")
        b.click(th)  # text (its collation is checked on the page below)
        names = column(b, t, runner)
        assert names[0].lower() == min(n.lower() for n in names), names

        # units, separators and blanks, on a page of its own
        synthetic = tmp_path / "units.html"
        synthetic.write_text(html_report.page("# units\n\n| t | v | n |\n|---|---|---|\n| a | 1.2 ms | w10 |\n"
                                              "| b | 950 µs | W2 |\n| c | — | alpha |\n| d | 2 s | beta-1 |\n"
                                              "| e | 1,234 µs | |\n| f | 12 ms | w1 |\n"), encoding="utf-8")
        b.open(synthetic.as_uri())
        b.click("document.querySelectorAll('th')[1]")
        assert column(b, 0, 0) == ["b", "a", "e", "f", "d", "c"]
        b.click("document.querySelectorAll('th')[1]")
        assert column(b, 0, 0) == ["d", "f", "e", "a", "b", "c"]  # the blank stays last
        b.click("document.querySelectorAll('th')[2]")  # text: natural order, case aside; the blank last
        assert column(b, 0, 2) == ["alpha", "beta-1", "w1", "W2", "w10", ""]

        # speedups sort by speed: "slower" below 1, en and zh alike
        speeds = tmp_path / "speeds.html"
        speeds.write_text(html_report.page("# s\n\n| r | speedup |\n|---|---|\n| a | ~1.7× slower (1.4–2.0) |\n"
                                           "| b | 2.1× faster (1.7–2.4) |\n| c | ref |\n| d | 1.2× faster (1.0–1.4) |\n"
                                           "| e | 慢 3×(2–4) |\n| f | 快 1.5×(1.2–1.8) |\n"), encoding="utf-8")
        b.open(speeds.as_uri())
        b.click("document.querySelectorAll('th')[1]")
        assert column(b, 0, 0) == ["e", "a", "d", "f", "b", "c"]

        assert b.errors() == [], b.errors()
        assert all(u.startswith(("file:", "data:")) for u in b.requests()), b.requests()

        # the checks above can fail: an injected image and script are blocked by the page's CSP, and seen
        b.events.clear()
        tampered = tmp_path / "tampered.html"
        tampered.write_text(html_report.page("# t\n").replace(
            "<main>", '<main><img src="https://example.invalid/x.png"><script>console.log(1)</script>'))
        b.open(tampered.as_uri())
        blocked = " ".join(b.errors())
        assert "img-src data:" in blocked and "script-src 'sha256-" in blocked, blocked
    finally:
        b.close()
    assert time.monotonic() - started < 60
