"""The HTML report in a real browser: headless Debian Chromium opens a copy of
index.html (a script added to the copy only: the report itself has none) and records,
after the page's load event, whether each image decoded and each table laid out; every
CSV the report wrote is linked from the page. Chromium comes from `make test`
(tests/install_chromium.sh); without it the test skips, except under CI=true."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_report import report, write_run

CHECK = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({src: i.getAttribute("src"), ok: i.complete && i.naturalWidth > 0,
                                                 width: i.naturalWidth}));
  const tables = [...document.querySelectorAll("table")].map(t => ({rows: t.rows.length,
    cells: t.rows.length ? t.rows[t.rows.length - 1].cells.length : 0, height: t.getBoundingClientRect().height}));
  const out = document.createElement("pre");
  out.id = "cwn-check";
  out.textContent = JSON.stringify({images, tables});
  document.body.appendChild(out);
});
</script>
"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    reason = "Debian's chromium is not installed (tests/install_chromium.sh as root, or make test)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def rendered(page: Path, profile: Path) -> dict:
    """What the check script recorded in ``page``'s DOM once loaded."""
    argv = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
            f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    found = re.search(r'<pre id="cwn-check">(.*?)</pre>', done.stdout, re.S)
    assert found, f"chromium exit {done.returncode}, no check output; stderr: {done.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


def test_index_html_images_load_and_tables_render_in_chromium(tmp_path):
    runs = tmp_path / "runs"
    for method in ("plain", "wn", "cwn"):
        for seed in (0, 1):
            write_run(runs, f"{method}{seed}", [40.0 - seed, 20.0, 10.0 + seed], method=method, seed=seed)
    bench = tmp_path / "bench.jsonl"
    rows = [{"kind": "env", "card": "Test GPU"}]
    rows += [{"kind": "measurement", "shape": "paper:64x128x32x32-128x3x3", "pass": "fwd", "dtype": "fp32",
              "memory_format": "nchw", "variant": v, "median_ms": ms, "iqr_ms": 0.1, "ratio_vs_plain": r}
             for v, ms, r in (("plain", 1.0, 1.0), ("cwn-explicit", 1.2, 1.2))]
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _, out = report(tmp_path, runs, bench)
    html = (out / "index.html").read_text()
    assert "<script" not in html  # the report stays script-free; the check goes into a copy
    page = out / "_browser_check.html"
    page.write_text(html.replace("</body>", CHECK + "</body>"))
    seen = rendered(page, tmp_path / "chromium-profile")
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 2  # curves and overhead
    assert sorted(i["src"] for i in seen["images"]) == pngs
    assert all(i["ok"] and i["width"] > 500 for i in seen["images"]), seen["images"]
    assert len(seen["tables"]) == html.count("<table") >= 8
    assert all(t["rows"] >= 2 and t["cells"] >= 2 and t["height"] > 0 for t in seen["tables"]), seen["tables"]
    links = set(re.findall(r'href="([^"]+\.csv)"', html))
    assert links == {p.name for p in out.glob("*.csv")}  # every CSV linked, and every link a file
