"""The raw text written once: mediation's streams keep each record's key, not its raw text; the one reader
(pipeline/raw_text.py) joins the text back from the usage records byte for byte — non-UTF-8 bytes, CRLF line
ends, doubled quotes — for suspense and the warehouse; a stream written before (its own raw column) reads as it
is; a row whose usage record is gone fails the read; and a recycled record is still rated once."""

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from assets.definitions import defs
from assets.resources import CdrbillHome
from pipeline.adhoc import open_warehouse
from pipeline.home import SAMPLE_DIR, Home
from pipeline.lake import lake_table
from pipeline.mediation import STREAMS
from pipeline.rating import rated_events
from pipeline.raw_text import with_raw_text_sql
from pipeline.reference import load_reference
from pipeline.warehouse import publish_warehouse

CYCLE = "2026-10"
# an Asterisk line a spreadsheet never saw: a caller name in Latin-1 (not UTF-8) with doubled quotes, a number
# no account holds (suspended at mediation: UNKNOWN_SUBSCRIBER)
UNKNOWN = (
    b'"","3125550177","2125550199","ctx","Jos\xe9 ""Pepe"" Mu\xf1oz <3125550177>","SIP/a","SIP/b","Dial","",'
    b'"2026-10-08 10:00:00","2026-10-08 10:00:00","2026-10-08 10:01:00",65,60,"ANSWERED","DOCUMENTATION",'
    b'"77.1",""'
)
# broken quoting: suspended at parse (UNPARSEABLE) with its raw text as read
BROKEN = b'"","3125550100","2125550199","ctx","Ann ""unclosed,"SIP/a","SIP/b","Dial","","2026-10-08 11:00:00"'
# a good call of a known number, rated
GOOD = (
    b'"","3125550100","2125550199","ctx","Ann","SIP/a","SIP/b","Dial","","2026-10-08 12:00:00",'
    b'"2026-10-08 12:00:00","2026-10-08 12:01:00",65,60,"ANSWERED","DOCUMENTATION","77.2",""'
)
LINES = (UNKNOWN, BROKEN, GOOD)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    home = Home(tmp_path / "home").ensure()
    shutil.copytree(SAMPLE_DIR / "reference", home.reference, dirs_exist_ok=True)
    (home.landing / "switch-chi").mkdir(parents=True, exist_ok=True)
    (home.landing / "switch-chi" / "Master.csv").write_bytes(b"\r\n".join(LINES) + b"\r\n")  # CRLF line ends
    monkeypatch.setenv("CDRBILL_HOME", str(home.root))
    return home


def _materialize(home: Home) -> None:
    result = dg.materialize(
        list(defs.assets or []),  # type: ignore[arg-type]
        selection=dg.AssetSelection.assets("usage_files", "mediated_usage", "rated_usage"),
        partition_key=CYCLE,
        resources={"cdrbill": CdrbillHome(root=str(home.root))},
    )
    assert result.success


def _suspense_raw_bytes(lake: Path) -> dict[int, bytes]:
    """Each suspended record's raw text through the reader, as the bytes of the file (Latin-1: a file that is not
    UTF-8 is read byte for byte)."""
    suspended = lake_table(lake, "mediated", "suspended", cycle=CYCLE)
    rows = duckdb.sql(f"select line_no, raw from ({with_raw_text_sql(lake, [suspended])})").fetchall()
    return {line_no: raw.encode("latin-1") for line_no, raw in rows}


def test_the_streams_keep_no_raw_text_and_the_reader_gives_it_back_byte_for_byte(home):
    _materialize(home)
    for stream in STREAMS:
        assert "raw" not in pl.read_parquet_schema(lake_table(home.lake, "mediated", stream, cycle=CYCLE))
    assert "raw" not in pl.read_parquet_schema(lake_table(home.lake, "rated", "suspended", cycle=CYCLE))
    suspended = pl.read_parquet(lake_table(home.lake, "mediated", "suspended", cycle=CYCLE))
    assert sorted(zip(suspended["line_no"], suspended["reason"], strict=True)) == [
        (1, "UNKNOWN_SUBSCRIBER"),
        (2, "UNPARSEABLE"),
    ]
    # line n of the file is LINES[n - 1]: its bytes without the CRLF line end, every other byte kept
    assert _suspense_raw_bytes(home.lake) == {1: UNKNOWN, 2: BROKEN}

    # the warehouse's suspense table reads it through the same reader
    publish_warehouse(home, load_reference(home.reference))
    con = open_warehouse(home.warehouse_db)
    try:
        rows = con.execute("select line_no, stage, raw from suspense order by line_no").fetchall()
    finally:
        con.close()
    assert [(line_no, stage, raw.encode("latin-1")) for line_no, stage, raw in rows] == [
        (1, "mediation", UNKNOWN),
        (2, "mediation", BROKEN),
    ]


def test_a_recycled_record_is_rated_once_and_its_raw_text_stays_in_the_usage_records(home):
    _materialize(home)
    # the fix: the number's owner since before the call
    with (home.reference / "service_numbers.csv").open("a") as numbers:
        numbers.write("+13125550177,ACC-0001,IL,2026-10-01,\n")
    job = defs.resolve_job_def("recycle_suspense")
    for _ in range(2):  # a second recycle run changes nothing: nothing is rated twice
        with dg.DagsterInstance.ephemeral() as instance:
            assert job.execute_in_process(partition_key=CYCLE, instance=instance).success
        rated = rated_events(home.lake, CYCLE).collect()
        assert sorted(rated["line_no"].to_list()) == [1, 3]
        assert _suspense_raw_bytes(home.lake) == {2: BROKEN}  # still unparseable, its text as received
    records = pl.read_parquet(lake_table(home.lake, "usage_records", "records", file_id=1))
    assert [raw.encode("latin-1") for raw in records.sort("line_no")["raw"]] == list(LINES)


def test_a_stream_written_with_its_raw_text_reads_as_it_is(home, tmp_path: Path):
    _materialize(home)
    suspended = lake_table(home.lake, "mediated", "suspended", cycle=CYCLE)
    joined = duckdb.sql(with_raw_text_sql(home.lake, [suspended])).pl()
    # a partition written before the text was kept once: the same rows with their own raw column
    before = tmp_path / "mediated" / f"cycle={CYCLE}" / "suspended.parquet"
    before.parent.mkdir(parents=True)
    pl.read_parquet(suspended).with_columns(raw=pl.lit("as written then")).write_parquet(before)
    old = duckdb.sql(with_raw_text_sql(home.lake, [before])).pl()
    assert old["raw"].to_list() == ["as written then"] * joined.height
    assert old.drop("raw").equals(joined.drop("raw"))


def test_a_suspended_record_without_its_usage_record_fails_the_read(home, tmp_path: Path):
    _materialize(home)
    suspended = pl.read_parquet(lake_table(home.lake, "mediated", "suspended", cycle=CYCLE))
    orphan = tmp_path / "orphan.parquet"
    # rows of lines the file does not have
    suspended.with_columns(line_no=pl.col("line_no") + 1000).write_parquet(orphan)
    with pytest.raises(duckdb.Error, match="has no usage record: its raw text would be lost"):
        duckdb.sql(with_raw_text_sql(home.lake, [orphan])).fetchall()
