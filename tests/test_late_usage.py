"""Late usage, end to end through Dagster: September is final, a file with September calls lands in October; the
calls are billed once, on the October invoice, flagged with their period; re-running either cycle moves
nothing; a call too old for late billing goes to suspense with its reason. (September → October rather than
October → November: Dagster's monthly partitions end at the last whole month, and the machine's clock is in
November, so 2026-11 is not a partition yet.)"""

import csv
import io
import json
import shutil
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from delivery_fixtures import copy_home
from warehouse_fixtures import warehouse_rows

from assets.resources import CdrbillHome
from pipeline.accounting import record_accounting
from pipeline.adhoc import open_warehouse
from pipeline.documents import render_invoice_html
from pipeline.engine import session
from pipeline.home import SAMPLE_DIR, TEMPLATES_DIR, Home
from pipeline.itemisation import itemisation_csv_bytes
from pipeline.lake import partition_dir
from pipeline.late_usage import LATE_USAGE_TOO_OLD, next_open_cycle
from pipeline.rating import rate_events, rated_events
from pipeline.reference import load_reference
from pipeline.reports import catalogue, run_report
from pipeline.state import open_state
from pipeline.statements import invoice_documents
from pipeline.summary import cycle_summary, format_summary
from pipeline.warehouse import publish_warehouse

SEPTEMBER, OCTOBER = "2026-09", "2026-10"
# the bill run without documents, delivery and reports (what late usage changes; rendering 49 PDFs per run
# would triple the test's time): mediation, rating, billing and the warehouse, checks included
GROUPS = {"mediation", "rating", "billing", "warehouse"}


def materialize_billing(home: Home, cycle: str) -> dg.ExecuteInProcessResult:
    """The cycle's bill run through Dagster, as ``bill_cycle`` runs it, less documents, delivery and reports."""
    from assets.definitions import defs

    assets = [
        asset
        for asset in defs.assets or []
        if isinstance(asset, dg.AssetsDefinition)
        and set(asset.group_names_by_key.values()) <= GROUPS
        and asset.key != dg.AssetKey("recycled_suspense")
    ]
    return dg.materialize(
        assets,
        partition_key=cycle,
        resources={"cdrbill": CdrbillHome(root=str(home.root))},
        raise_on_error=False,
    )


def _asterisk(line: int, src: str, dst: str, start: str, end: str, billsec: int) -> str:
    """One Asterisk cdr_csv record (answered), unique id per line."""
    return (
        f'"","{src}","{dst}","from-internal","<{src}>","PJSIP/{src}-{line:08x}","PJSIP/trunk-out-{line:08x}",'
        f'"Dial","PJSIP/{dst}@trunk-out,60","{start}","{start}","{end}",{billsec},{billsec},"ANSWERED",'
        f'"DOCUMENTATION","1799990000.{line}",""\n'
    )


# Maria Lopez (ACC-0001, +13125550100, plan RES-BASIC → card RC-STD: United States & Canada 0.0200 per 60 s,
# 6/6 increments, half_up to 4 decimals), all times America/Chicago:
LATE_FILE = "".join(
    [
        _asterisk(1, "3125550100", "2125550150", "2026-09-20 10:00:00", "2026-09-20 10:01:30", 90),  # late
        _asterisk(2, "3125550100", "2125550151", "2026-09-25 18:00:00", "2026-09-25 18:01:01", 61),  # late
        _asterisk(
            3, "3125550100", "2125550152", "2026-09-05 09:00:00", "2026-09-05 09:02:00", 120
        ),  # too old
        _asterisk(4, "3125550100", "2125550153", "2026-10-28 12:00:00", "2026-10-28 12:01:00", 60),  # October
    ]
)


def _rated(home: Home, cycle: str) -> pl.DataFrame:
    return rated_events(home.lake, cycle).collect()


def _snapshot(home: Home) -> dict[str, object]:
    """What must not move when a cycle runs again: both cycles' rated events, invoices and the ledgers."""
    with open_state(home.state_db) as state:
        ledgers = {
            table: state.sql(f"select * exclude (finalized_at) from {table} order by all").fetchall()
            for table in ("invoices", "finalized_cycles")
        }
        late = state.sql("select * from late_usage order by all").fetchall()
        adjustments = state.sql("select adjustment_id, amount from adjustments order by all").fetchall()
    return {
        **{f"rated_{c}": _rated(home, c).sort("file_id", "line_no").to_dicts() for c in (SEPTEMBER, OCTOBER)},
        **ledgers,
        "late_usage": late,
        "adjustments": adjustments,
    }


# September's own file, from a FreeSWITCH switch whose source names the wrong template (default for the
# 15-column example one): UNPARSEABLE in September, recycled once the source is fixed (September then final).
# Maria Lopez to New York, 60 s.
SEPTEMBER_FILE = (
    '"Maria","3125550100","2126550199","default","2026-09-28 09:15:00","2026-09-28 09:15:05",'
    '"2026-09-28 09:16:05","65","60","NORMAL_CLEARING","late5-u1","","acct","PCMU","PCMU"\n'
)
WRONG_TEMPLATE = 'format = "freeswitch_csv"\ntemplate = "default"\ntimezone = "America/Chicago"\ndefault_region = "US"\n'


@pytest.fixture(scope="module")
def late_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """September billed and final with one call suspended UNPARSEABLE; the source is then fixed and September's
    suspense recycled (after it was final); then the sample month's files and a Chicago
    switch file with September calls land and October runs. Late usage older than 20 days before October 1
    (September 11) is too old to bill late."""
    home = Home(tmp_path_factory.mktemp("late") / "home").ensure()
    shutil.copytree(SAMPLE_DIR / "reference", home.reference, dirs_exist_ok=True)
    source = home.reference / "sources" / "switch-fs.toml"
    source.write_text(WRONG_TEMPLATE, encoding="utf-8")
    (home.landing / "switch-fs").mkdir(parents=True, exist_ok=True)
    (home.landing / "switch-fs" / "Master.csv").write_text(SEPTEMBER_FILE, encoding="utf-8")
    assert materialize_billing(home, SEPTEMBER).success
    source.write_text(WRONG_TEMPLATE.replace('"default"', '"example"'), encoding="utf-8")
    recycle(home, SEPTEMBER)
    shutil.copytree(SAMPLE_DIR / "landing", home.landing, dirs_exist_ok=True)
    (home.reference / "settings.toml").write_text("late_usage_max_age_days = 20\n", encoding="utf-8")
    (home.landing / "switch-chi" / "Master-20261004.csv").write_text(LATE_FILE, encoding="utf-8")
    assert materialize_billing(home, OCTOBER).success
    return home


def recycle(home: Home, cycle: str) -> None:
    """The recycle_suspense job of one cycle (re-mediate and re-rate its suspense)."""
    from assets.definitions import defs

    with dg.DagsterInstance.ephemeral() as instance:
        run = defs.resolve_job_def("recycle_suspense").execute_in_process(
            partition_key=cycle, instance=instance, resources={"cdrbill": CdrbillHome(root=str(home.root))}
        )
    assert run.success


def _late_file(home: Home) -> int:
    with open_state(home.state_db) as state:
        return int(
            state.sql("select file_id from usage_files where file_name = 'Master-20261004.csv'").fetchall()[
                0
            ][0]
        )


def test_late_calls_are_billed_once_on_the_next_open_cycle_without_allowance(late_home: Home):
    september, october = _rated(late_home, SEPTEMBER), _rated(late_home, OCTOBER)
    late_file = _late_file(late_home)
    assert september.height == 0  # the closed cycle never bills them
    late = october.filter(pl.col("late_from_cycle") == SEPTEMBER).sort("file_id", "line_no")
    assert late.select("file_id", "line_no").rows() == [(1, 1), (late_file, 1), (late_file, 2)]  # 1: recycled
    late = late.filter(pl.col("file_id") == late_file)
    assert late["cycle"].unique().to_list() == [OCTOBER]
    # 90 s → 90 billed (6/6) × 0.02 / 60 = 0.0300; 61 s → 66 billed × 0.02 / 60 = 0.0220
    assert late["billed_units"].to_list() == [90, 66]
    assert late["charge_amount"].to_list() == [Decimal("0.0300"), Decimal("0.0220")]
    assert late["included_units"].to_list() == [0, 0]
    on_time = october.filter(pl.col("late_from_cycle").is_null() & (pl.col("file_id") == late_file))
    assert on_time["line_no"].to_list() == [4]
    with open_state(late_home.state_db) as state:
        routed = state.sql(
            "select file_id, line_no, call_cycle, billed_cycle, route from late_usage order by file_id, line_no"
        ).fetchall()
    assert routed == [(1, 1, SEPTEMBER, OCTOBER, "recycled")] + [
        (late_file, line, SEPTEMBER, OCTOBER, "late_file") for line in (1, 2, 3)
    ]


def test_suspense_recycled_after_its_cycle_was_final_is_billed_late(late_home: Home):
    # September's UNPARSEABLE call, recycled once its source was fixed (September was final): billed in October,
    # 60 s → 60 billed × 0.02 / 60 = 0.0200; no adjustment on September's final invoices
    recycled = _rated(late_home, OCTOBER).filter(pl.col("file_id") == 1)
    assert recycled.select("line_no", "account_id", "late_from_cycle", "charge_amount").rows() == [
        (1, "ACC-0001", SEPTEMBER, Decimal("0.0200"))
    ]
    with open_state(late_home.state_db) as state:
        assert state.sql("select count(*) from adjustments where source like 'rerate:%'").fetchall() == [(0,)]


def test_a_late_call_too_old_is_suspended_with_its_reason(late_home: Home):
    suspended = pl.read_parquet(
        partition_dir(late_home.lake, "mediated", cycle=OCTOBER) / "suspended.parquet"
    )
    too_old = suspended.filter(pl.col("reason") == LATE_USAGE_TOO_OLD)
    # September 5 is before October 1 − 20 days = September 11
    assert too_old.select("file_id", "line_no", "late_from_cycle").rows() == [
        (_late_file(late_home), 3, SEPTEMBER)
    ]


def test_late_usage_is_counted_where_it_is_billed(late_home: Home):
    late_file = _late_file(late_home)
    with session() as con:
        september = record_accounting(con, late_home.lake, SEPTEMBER)
        october = record_accounting(con, late_home.lake, OCTOBER)
    assert september["records_in"].sum() == 0  # its late call is not September's record any more
    assert september["balanced"].all() and october["balanced"].all()
    # the sample files as in the golden cycle: 940 in = 863 rated + 9 suspended + 7 duplicate + 61 discarded
    sample = october.filter(~pl.col("file_id").is_in([1, late_file]))
    assert [int(sample[c].sum()) for c in ("records_in", "rated", "duplicate", "discarded")] == [
        940,
        863,
        7,
        61,
    ]
    assert int(sample["suspended"].sum()) + int(sample["suspended_in_rating"].sum()) == 9
    row = october.filter(pl.col("file_id") == late_file).row(0, named=True)
    # 4 records in October: 3 rated (2 late, 1 on time) + 1 suspended (too old)
    assert (row["records_in"], row["rated"], row["suspended"]) == (4, 3, 1)
    row = october.filter(pl.col("file_id") == 1).row(0, named=True)
    assert (row["records_in"], row["rated"]) == (1, 1)  # the recycled September call
    summaries = {c: format_summary(cycle_summary(late_home, c)) for c in (SEPTEMBER, OCTOBER)}
    assert "late:     4 records of final cycles 2026-09 billed here (in the records above; 1 too old" in summaries[
        OCTOBER
    ]
    assert "late:     4 records arrived after this cycle was final: billed in a later cycle; 0 waiting" in (
        summaries[SEPTEMBER]
    )


def test_the_warehouse_flags_late_usage(late_home: Home):
    with duckdb.connect(str(late_home.root / "warehouse.duckdb"), read_only=True) as wh:
        late = wh.sql(
            "select cycle, late_from_cycle, count(*), sum(charge_amount) from rated_usage "
            "where late_from_cycle is not null group by all"
        ).fetchall()
    assert late == [(OCTOBER, SEPTEMBER, 3, Decimal("0.072000"))]  # 0.0300 + 0.0220 + 0.0200 (recycled)


def test_the_warehouse_published_part_by_part_equals_a_full_build(late_home: Home, tmp_path: Path):
    """October's publication is incremental: it read October's parts and September's again (its file re-dated
    by the late rows of its recycled record, its rated cycle recycled); a full build of the same lake gives the
    same rows."""
    with duckdb.connect(str(late_home.warehouse_db), read_only=True) as wh:
        assert wh.sql("select publication from published").fetchall() == [("incremental",)]
    incremental = warehouse_rows(late_home.warehouse_db)
    home = copy_home(late_home, tmp_path / "full")
    assert publish_warehouse(home, load_reference(home.reference), full=True).mode == "full"
    assert warehouse_rows(home.warehouse_db) == incremental


def test_running_both_cycles_again_moves_nothing(late_home: Home, tmp_path: Path):
    home = copy_home(late_home, tmp_path / "again")
    before = _snapshot(home)
    recycle(home, SEPTEMBER)  # a record billed late is never billed again, even recycled again
    assert materialize_billing(home, SEPTEMBER).success
    assert materialize_billing(home, OCTOBER).success
    assert _snapshot(home) == before


def test_the_next_open_cycle_skips_final_ones():
    assert next_open_cycle("2026-10", {"2026-10"}) == "2026-11"
    assert next_open_cycle("2026-11", {"2026-10", "2026-11", "2026-12"}) == "2027-01"


def test_explain_says_where_late_usage_was_billed(late_home: Home, capsys):
    from assets.cli import main

    file_id = str(_late_file(late_home))
    assert main(["--home", str(late_home.root), "explain", "--cycle", OCTOBER, "--file-id", file_id, "--line", "1",
                 "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["late usage"] == f"late usage from cycle {SEPTEMBER}, billed in {OCTOBER}"
    # asked in the closed cycle the call falls in: where it went
    assert main(["--home", str(late_home.root), "explain", "--cycle", SEPTEMBER, "--file-id", file_id]) == 0
    out = capsys.readouterr().out
    assert f"file {file_id} line 2: late usage from cycle {SEPTEMBER}, billed in {OCTOBER}" in out
    assert f"cdrbill explain --cycle {OCTOBER} --file-id {file_id} --line 1" in out


def test_the_invoice_itemisation_flags_late_usage_with_its_period(late_home: Home):
    reference = load_reference(late_home.reference)
    docs = {d.account_id: d for d in invoice_documents(late_home.lake, OCTOBER, reference)}
    items = [i for i in docs["ACC-0001"].usage_items if i.late_from_cycle]
    assert [i.charge for i in items] == [Decimal("0.0300"), Decimal("0.0220"), Decimal("0.0200")]
    html = render_invoice_html(docs["ACC-0001"], TEMPLATES_DIR)  # Maria Lopez reads her bill in Spanish
    assert html.count("consumo de septiembre 2026, facturado con retraso") == 3
    assert "3 de periodos anteriores" in html
    rows = list(csv.DictReader(io.StringIO(itemisation_csv_bytes(docs["ACC-0001"]).decode())))
    assert sum(r["late_from_cycle"] == SEPTEMBER for r in rows) == 3  # the CSV attachment flags them too


def test_the_late_usage_report_per_original_cycle(late_home: Home):
    con = open_warehouse(late_home.warehouse_db)
    try:
        report = run_report(con, catalogue()["late_usage"], {"cycle": OCTOBER})
    finally:
        con.close()
    # the late file's 3 records: 2 rated (0.0300 + 0.0220 = 0.0520), 1 too old; the recycled one rated 0.0200
    assert report.rows() == [
        (SEPTEMBER, "late_file", 3, 2, 1, 1, Decimal("0.052000")),
        (SEPTEMBER, "recycled", 1, 1, 0, 0, Decimal("0.020000")),
    ]


def test_late_usage_is_charged_without_allowance():
    from test_rating import reference_frames

    def event(line: int, start: datetime, billsec: int, late_from_cycle: str | None) -> dict[str, object]:
        return {
            "file_id": 1, "line_no": line, "cycle": OCTOBER, "source_id": "s", "status": "normalised",
            "reason": None, "raw": "", "source_record_id": None, "account_id": "ACC-9", "service_state": "IL",
            "charged_number": "+13125550100", "calling_number": "+13125550100", "called_number": "+12125550123",
            "start_utc": start, "call_date": start.date(), "billsec": billsec, "service": "voice", "units": billsec,
            "sms_chars": None, "event_code": None, "visited_country": None, "disposition": "ANSWERED",
            "late_from_cycle": late_from_cycle,
        }  # fmt: skip

    # ACC-9's plan P7 includes 100 s of domestic calls; card RC-C per second at 0.0125 per 60 s, half_even to 4.
    # The late September call comes first in call order but takes nothing of October's allowance:
    # late 60 s → 60 × 0.0125 / 60 = 0.0125; October 120 s → 100 included, 20 × 0.0125 / 60 = 0.00417 → 0.0042
    # (were the allowance open to it: late 60 included → 0, October 40 included + 80 charged → 0.0167)
    normalised = pl.DataFrame(
        [event(1, datetime(2026, 9, 20, 12), 60, SEPTEMBER), event(2, datetime(2026, 10, 1, 12), 120, None)]
    )
    with session() as con:
        for name, frame in {**reference_frames(), "normalised": normalised}.items():
            con.register(name, frame)
        rated = rate_events(con).pl().sort("line_no")
    assert rated["included_units"].to_list() == [0, 100]
    assert rated["allowance_id"].to_list() == [None, "AL-P7-VOICE"]
    assert rated["charge_amount"].to_list() == [Decimal("0.0125"), Decimal("0.0042")]


def test_the_record_flow_report_counts_late_usage_where_it_is_billed(late_home: Home):
    con = open_warehouse(late_home.warehouse_db)
    try:
        flows = {c: run_report(con, catalogue()["record_flow"], {"cycle": c}).row(0, named=True) for c in (SEPTEMBER, OCTOBER)}
    finally:
        con.close()
    assert flows[SEPTEMBER]["records_in"] == 0
    # October: the sample's 940 + the late file's 4 + the recycled September call = 945, none unaccounted
    assert (flows[OCTOBER]["records_in"], flows[OCTOBER]["unaccounted"]) == (945, 0)
