"""bagscope from a notebook: simulate a drive, run the analysis, query the metrics, plot.

Each ``# %%`` is a cell (VS Code, Jupyter via jupytext, Spyder). Run it whole as a script::

    python examples/notebook.py [LOG] [--out DIR]

Without LOG a 2 s urban drive is simulated into a temporary folder; everything written
(the run directory, latency.png) goes to --out (default: a temporary folder, printed).
"""

# %% Setup: a log to look at
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import duckdb
import matplotlib as mpl
import numpy as np
import pyarrow.compute as pc

mpl.use("Agg")
import matplotlib.pyplot as plt

import bagscope
from bagscope.viz.series import Series

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("log", nargs="?", type=Path, help="a log; default: simulate one")
parser.add_argument("--out", type=Path, help="folder for the results")
args = parser.parse_args()
out = args.out or Path(tempfile.mkdtemp(prefix="bagscope-notebook-"))
out.mkdir(parents=True, exist_ok=True)

if args.log is None:
    from bagscope.sim.config import make_scenario
    from bagscope.sim.simulate import simulate

    scenario = make_scenario(
        "urban", seed=7, duration_ns=2_000_000_000, beams=16, camera_size=(160, 90)
    )
    log_path = simulate(out / "drive.mcap", scenario=scenario, workers=0).log_path
else:
    log_path = args.log

# %% Run the default analysis (what `replay analyze` runs) and keep it as a run directory
run = bagscope.run(log_path, out=out / "run", overwrite=True)
print(f"verdict: {run.verdict}  events: {run.event_counts}  metrics: {run.metrics.num_rows} rows")
for event in run.events[:5]:
    print(f"  {event.severity:7} {event.stage}/{event.kind}: {event.message}")

# %% Query the metrics with DuckDB: straight from the parquet file, or from the Arrow table
parquet = (out / "run" / "metrics.parquet").as_posix()
per_stage = duckdb.execute(
    f"SELECT stage, count(*) AS n FROM read_parquet('{parquet}') GROUP BY stage ORDER BY stage"
).fetchall()
print("metrics per stage:", per_stage)
metrics = run.metrics
rates = duckdb.execute(
    "SELECT topic, value FROM metrics WHERE stage = 'topic_health' AND metric = 'rate_hz' "
    "AND t_ns IS NULL ORDER BY topic"
).fetchall()
print("rates (Hz):", rates)

# %% The same without SQL: pyarrow compute (no pandas needed)
is_latency = pc.and_(
    pc.equal(metrics["stage"].cast("string"), "latency"), pc.is_valid(metrics["t_ns"])
)
latency = metrics.filter(is_latency)
topics = sorted({t for t in latency["topic"].cast("string").to_pylist() if t})
print("latency series:", topics)

# %% Plot the per-message latency of each topic with bagscope's series plot
series = []
for topic in topics:
    rows = latency.filter(pc.equal(latency["topic"].cast("string"), topic))
    metric = "latency_ms"
    rows = rows.filter(pc.equal(rows["metric"].cast("string"), metric))
    series.append(
        Series(
            name=f"{topic} {metric}",
            topic=topic,
            field=metric,
            msgtype="",
            times_ns=np.asarray(rows["t_ns"].to_numpy(), dtype=np.int64),
            values=np.asarray(rows["value"].to_numpy(), dtype=np.float64),
            time_source="log",
        )
    )
figure = bagscope.viz.plot_series(series, title="latency per message") if series else plt.figure()
png = out / "latency.png"
figure.savefig(png, dpi=80)
print(f"figure: {png}")
print(f"run directory: {run.run_dir}")
