"""The rating floor bench (``bench/rating_floor.py``) runs on a tiny generated month and its steps agree with
each other and across the two engines (no speed asserted: speed belongs to ``bench/``)."""

import json
import subprocess
import sys
from pathlib import Path

import duckdb

from bench.rating import SIZES, prepare
from pipeline.home import PROJECT_ROOT, Home


def test_the_floor_steps_run_and_duckdb_and_polars_price_the_same(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    prepare(home, 20, 10)
    assert SIZES["1m"] == (20000, 50)  # the month bench.rating times; here 20 accounts × 10 calls
    out = tmp_path / "floor"
    run = subprocess.run(
        [sys.executable, "-m", "bench.rating_floor", "--home", str(home.root), "--prefixes", "200", "--polars",
         "--out", str(out)],
        cwd=PROJECT_ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    header, *lines = [json.loads(line) for line in run.stdout.splitlines()]
    steps = {(line["engine"], line["step"]): line for line in lines}
    assert list(steps) == [("duckdb", s) for s in ("a", "b", "c", "d", "e", "e_narrow")] + [
        ("polars", s) for s in ("a", "b", "c", "d")
    ]
    events = header["events"]
    assert header["destinations"] > 4 * 200  # every card has its 200 prefixes more
    # (a) writes every event; each step keeps the events it can price (an inner join: no book, no prefix, no band)
    assert steps["duckdb", "a"]["rows"] == events > 0
    rows = [steps["duckdb", s]["rows"] for s in ("a", "b", "c", "d", "e")]
    assert rows == sorted(rows, reverse=True) and rows[-1] > 0.9 * events
    assert steps["duckdb", "e_narrow"]["rows"] == steps["duckdb", "e"]["rows"]
    # the two engines apply the same rules: the same rows, and at (d) the same destination, units and charge
    for step in ("a", "b", "c", "d"):
        assert steps["polars", step]["rows"] == steps["duckdb", step]["rows"]
    key = "file_id, line_no, price_book_id, rate_card_id, destination_no, billed_units, charge_micros"
    con = duckdb.connect()
    for left, right in (("d", "polars-d"), ("polars-d", "d")):
        differ = con.execute(
            f"select {key} from read_parquet('{out / left}.parquet') "
            f"except all select {key} from read_parquet('{out / right}.parquet')"
        ).fetchall()
        assert differ == []
    # the charge is the one-step rule: billed units in increments, × the rate / unit, rounded once
    charged = con.execute(
        f"select count(*), count(*) filter (where charge_micros > 0) from read_parquet('{out / 'd'}.parquet')"
    ).fetchone()
    assert charged is not None and charged[1] > 0.5 * charged[0]
    # --narrow: each step writes its key and outcome only, the same rows and, at (e), the same outcome
    narrow = subprocess.run(
        [sys.executable, "-m", "bench.rating_floor", "--home", str(home.root), "--prefixes", "200", "--narrow",
         "--out", str(tmp_path / "narrow")],
        cwd=PROJECT_ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    narrow_rows = {line["step"]: line["rows"] for line in map(json.loads, narrow.stdout.splitlines()[1:])}
    assert narrow_rows == {step: line["rows"] for (engine, step), line in steps.items() if engine == "duckdb"}
    for left, right in (
        (out / "e_narrow", tmp_path / "narrow" / "e"),
        (tmp_path / "narrow" / "e", out / "e_narrow"),
    ):
        assert (
            con.execute(
                f"select * from read_parquet('{left}.parquet') except all select * from read_parquet('{right}.parquet')"
            ).fetchall()
            == []
        )
