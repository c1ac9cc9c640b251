"""``summary.html``'s aggregate figures, checked against numbers worked out here from the
batch's own Parquet files: a real batch of simulated drives (clean, with an outage, with
drops) and a file that is not a log, then the pages of a single log, of a batch where nothing
ran and of no logs at all."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest
from PIL import Image

import bagscope
from bagscope.batch import BatchResult, run_dir_name
from bagscope.batch.summary import summary_html
from bagscope.sim.config import Scenario, make_scenario
from bagscope.sim.simulate import simulate

# A name with markup and a lone "$" (Matplotlib's mathtext marker): it must reach the page
# escaped and the figures without breaking them.
ODD_NAME = "outage <b>&$1.mcap"


@dataclass
class Page:
    """What a reader of the page sees: its images, table cells by table class, and text."""

    images: list[dict[str, str]] = field(default_factory=list)
    tables: dict[str, list[list[str]]] = field(default_factory=dict)
    tiles: dict[str, str] = field(default_factory=dict)
    links: dict[str, list[str]] = field(default_factory=dict)  # table class -> hrefs
    text: str = ""
    metas: list[dict[str, str]] = field(default_factory=list)
    scripts: int = 0


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page = Page()
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._tile: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "img":
            self.page.images.append(a)
        elif tag == "meta":
            self.page.metas.append(a)
        elif tag == "script":
            self.page.scripts += 1
        elif tag == "table":
            self._table = a.get("class") or "table"
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "a" and self._table is not None:
            self.page.links.setdefault(self._table, []).append(a.get("href", ""))
        elif tag == "div" and "data-verdict" in a:
            self._tile = a["data-verdict"]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.page.tables.setdefault(self._table, []).append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        self._text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._tile is not None:
            self.page.tiles[self._tile] = data.strip()
            self._tile = None

    def close(self) -> None:
        super().close()
        self.page.text = " ".join(" ".join(self._text).split())


def read_page(path: Path) -> Page:
    reader = _Reader()
    reader.feed(path.read_text(encoding="utf-8"))
    reader.close()
    return reader.page


def check_images(page: Page) -> list[Image.Image]:
    """Every image a PNG data URI that decodes, at twice the size the page shows it."""
    decoded: list[Image.Image] = []
    for img in page.images:
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix)
        picture = Image.open(io.BytesIO(base64.b64decode(img["src"][len(prefix) :], validate=True)))
        picture.load()
        assert picture.format == "PNG"
        width, height = int(img["width"]), int(img["height"])
        assert picture.size == (2 * width, 2 * height)
        assert 300 <= width <= 1140
        assert 40 <= height <= 1400
        assert img["alt"]
        decoded.append(picture)
    return decoded


def one_second(seed: int) -> Scenario:
    return make_scenario(
        "urban", seed=seed, duration_ns=1_000_000_000, beams=16, camera_size=(160, 90)
    )


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A clean drive, one with a camera outage, one with IMU drops, and a corrupt file."""
    root = tmp_path_factory.mktemp("summary_logs")
    specs = {
        "clean": ("clean.mcap", None),
        "outage": (ODD_NAME, "outage:/camera/image/compressed=0.3s+0.4s"),
        "drops": ("drops.mcap", "drop:/imu=0.2"),
    }
    found = {}
    for seed, (key, (name, faults)) in enumerate(specs.items()):
        sim = simulate(root / name, fmt="mcap", scenario=one_second(seed), faults=faults, workers=0)
        found[key] = sim.log_path
    corrupt = root / "corrupt.mcap"
    corrupt.write_bytes(b"\x00garbage, not a log" * 20)
    found["corrupt"] = corrupt
    return found


@pytest.fixture(scope="module")
def batch(logs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("summary") / "results"
    bagscope.batch(list(logs.values()), out=out, workers=2, figures=False)
    return out


def parquet(out: Path, name: str) -> str:
    return (out / name).as_posix()


def test_figures_are_self_contained_pngs(batch: Path) -> None:
    page = read_page(batch / "summary.html")
    images = check_images(page)
    assert len(images) == 4  # verdicts, findings per kind, errors per log, run-wide metrics
    assert page.scripts == 0
    csp = [m for m in page.metas if m.get("http-equiv") == "Content-Security-Policy"]
    assert csp
    assert "default-src 'none'" in csp[0]["content"]
    raw = (batch / "summary.html").read_text()
    assert "http://" not in raw
    assert "https://" not in raw
    assert "<b>" not in raw
    assert "outage &lt;b&gt;&amp;$1.mcap" in raw


def test_verdict_counts(batch: Path, logs: dict[str, Path]) -> None:
    page = read_page(batch / "summary.html")
    worst = dict(
        duckdb.execute(
            "SELECT log, max(CASE severity WHEN 'error' THEN 2 WHEN 'warning' THEN 1 ELSE 0 END)"
            f" FROM read_parquet('{parquet(batch, 'events.parquet')}') GROUP BY log"
        ).fetchall()
    )
    ran = [str(p) for k, p in logs.items() if k != "corrupt"]
    expected = {"pass": 0, "warn": 0, "fail": 0}
    for log in ran:
        expected[("pass", "warn", "fail")[worst.get(log, 0)]] += 1
    failures = (batch / "failures.jsonl").read_text().splitlines()
    assert [json.loads(line)["log"] for line in failures] == [str(logs["corrupt"])]
    assert expected["fail"] == 2  # the outage and the drops are both errors: facts, not luck
    assert page.tiles == {
        "pass": str(expected["pass"]),
        "warn": str(expected["warn"]),
        "fail": str(expected["fail"]),
        "failed": "1",
    }
    # the per-log table keeps its order: failed to run first, then worst verdict
    rows = page.tables["logs"][1:]
    assert rows[0][:2] == [str(logs["corrupt"]), "failed"]
    assert [r[1] for r in rows[1:3]] == ["fail", "fail"]
    assert f"runs/{run_dir_name(logs['clean'])}/report.html" in page.links["logs"]


def test_findings_per_kind_match_the_events_parquet(batch: Path) -> None:
    page = read_page(batch / "summary.html")
    header, *rows = page.tables["kinds"]
    assert [h.lower() for h in header] == ["kind", "logs", "errors", "warnings", "info", "events"]
    shown = [(r[0], *(int(c.replace(",", "")) for c in r[1:])) for r in rows]
    query = f"""
        SELECT kind,
               count(DISTINCT log),
               count(*) FILTER (WHERE severity = 'error'),
               count(*) FILTER (WHERE severity = 'warning'),
               count(*) FILTER (WHERE severity = 'info'),
               count(*),
               count(DISTINCT log) FILTER (WHERE severity IN ('error', 'warning')) AS problem
        FROM read_parquet('{parquet(batch, "events.parquet")}')
        GROUP BY kind
    """
    expected = duckdb.execute(query).fetchall()
    # problems first (logs where the kind was an error or warning), then logs, events, name
    expected.sort(key=lambda r: (-r[6], -r[1], -r[5], r[0]))
    assert shown == [r[:6] for r in expected]
    kinds = {r[0] for r in shown}
    assert {"gap", "drop"} <= kinds  # the injected outage and drops were found
    alt = next(i["alt"] for i in page.images if i["alt"].startswith("Findings per kind"))
    assert f"{shown[0][0]}: {shown[0][1]} logs, {shown[0][5]} events" in alt


def test_errors_and_warnings_per_log(batch: Path, logs: dict[str, Path]) -> None:
    page = read_page(batch / "summary.html")
    counts = duckdb.execute(
        "SELECT log, count(*) FILTER (WHERE severity = 'error') AS e,"
        " count(*) FILTER (WHERE severity = 'warning') AS w"
        f" FROM read_parquet('{parquet(batch, 'events.parquet')}') GROUP BY log"
        " HAVING e + w > 0 ORDER BY e DESC, w DESC"
    ).fetchall()
    assert len(counts) >= 2
    assert f"{len(counts)} logs of 3 that ran had errors or warnings." in page.text
    assert "1 log that failed to run is not counted." in page.text
    alt = next(i["alt"] for i in page.images if i["alt"].startswith("Errors and warnings"))
    listed = alt.split(": ", 1)[1].split("; ")
    assert [s.split(": ")[0] for s in listed] == [Path(log).name for log, _, _ in counts]
    assert listed[0].endswith(f"{counts[0][1]} errors, {counts[0][2]} warnings")


def test_run_wide_metrics_match_the_metrics_parquet(batch: Path) -> None:
    page = read_page(batch / "summary.html")
    for stage, metric, pick, keep in (
        ("topic_health", "rate_hz", "arg_min", "value > 0"),  # a log axis: positive rates
        ("latency", "latency_p95_ms", "arg_max", "true"),
    ):
        header, *rows = page.tables[f"metric m-{metric}"]
        assert header[0].lower() == "topic"
        expected = duckdb.execute(
            f"SELECT topic, count(*), min(value), median(value), max(value), {pick}(log, value)"
            f" FROM read_parquet('{parquet(batch, 'metrics.parquet')}')"
            f" WHERE t_ns IS NULL AND stage = '{stage}' AND metric = '{metric}' AND {keep}"
            " GROUP BY topic HAVING count(*) >= 2 ORDER BY topic"
        ).fetchall()
        assert len(expected) >= 5  # camera, lidar, imu, odom, tf at least
        assert rows == [
            [
                t,
                str(n),
                f"{lo:,.2f}",
                f"{mid:,.2f}",
                f"{hi:,.2f}",
                Path(worst).name if f"{lo:.2f}" != f"{hi:.2f}" else "—",
            ]
            for t, n, lo, mid, hi, worst in expected
        ]
    # the outage shows: the camera's lowest rate is the outage log's, well under the median
    camera = next(r for r in page.tables["metric m-rate_hz"] if r[0] == "/camera/image/compressed")
    assert camera[5] == ODD_NAME
    assert float(camera[2]) < 0.8 * float(camera[3])


def test_a_single_log_without_errors(logs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "one"
    bagscope.batch([logs["clean"]], out=out, workers=1, figures=False)
    page = read_page(out / "summary.html")
    check_images(page)
    # verdicts, findings per kind (its info findings), metrics; no errors-per-log chart
    assert len(page.images) == 3
    assert page.tiles == {"pass": "1", "warn": "0", "fail": "0", "failed": "0"}
    assert "No errors or warnings in the 1 log that ran." in page.text
    events = duckdb.execute(
        f"SELECT kind, count(*) FROM read_parquet('{parquet(out, 'events.parquet')}')"
        " GROUP BY kind ORDER BY kind"
    ).fetchall()
    assert sorted((r[0], int(r[5])) for r in page.tables["kinds"][1:]) == events
    rates = page.tables["metric m-rate_hz"][1:]
    assert rates
    assert all(r[1] == "1" and r[2] == r[3] == r[4] and r[5] == "—" for r in rates)


def test_a_batch_where_nothing_ran(logs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "none"
    result = bagscope.batch([logs["corrupt"]], out=out, workers=1, figures=False)
    assert not result.ran
    page = read_page(out / "summary.html")
    assert len(check_images(page)) == 1  # the verdict bar: all of it "failed to run"
    assert page.tiles == {"pass": "0", "warn": "0", "fail": "0", "failed": "1"}
    assert "No findings: no log ran." in page.text
    assert "kinds" not in page.tables
    assert not any(name.startswith("metric ") for name in page.tables)
    assert page.tables["logs"][1][0] == str(logs["corrupt"])


def test_no_logs_at_all(tmp_path: Path) -> None:
    page_text = summary_html(BatchResult(out=tmp_path, logs=[]))
    (tmp_path / "summary.html").write_text(page_text)
    page = read_page(tmp_path / "summary.html")
    assert page.images == []
    assert page.tiles == {"pass": "0", "warn": "0", "fail": "0", "failed": "0"}
    assert "No logs in this batch." in page.text
    assert "No findings: no log ran." in page.text
