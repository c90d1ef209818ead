"""Rerating a final cycle after a rate fix: a delta report per event and account, adjustments for the next
invoice (deterministic, posted once), and final invoices that never change."""

from datetime import datetime
from decimal import Decimal

import duckdb
import polars as pl
import pytest

from assets.cli import main
from pipeline.billing import compute_charges
from pipeline.cycles import BillCycle
from pipeline.engine import session
from pipeline.intake import register_landed_files
from pipeline.invoicing import finalize_cycle, register_inputs
from pipeline.lake import partition_dir
from pipeline.mediation import mediate_cycle
from pipeline.rating import rate_cycle, rated_events_sql, rating_outcomes_view
from pipeline.reference import Reference, load_reference
from pipeline.rerating import RERATE, RatedEventLost, rerate_cycle
from pipeline.settings import Settings
from pipeline.state import open_state

CYCLE = "2026-10"


def final_sample_cycle(home) -> None:
    """The sample cycle rated, billed and finalised through the pipeline (no documents: not needed here)."""
    reference = load_reference(home.reference)
    settings = Settings()
    cycle = BillCycle.parse(CYCLE, settings.billing_timezone)
    with open_state(home.state_db) as state:
        register_landed_files(
            home, state, reference.sources, cycle=CYCLE, billing_timezone=settings.billing_timezone
        )
    with session(reference) as con:
        mediate_cycle(con, home.lake, CYCLE)
        rate_cycle(con, home.lake, CYCLE)
        compute_charges(con, home.lake, cycle)
    with open_state(home.state_db) as state:
        register_inputs(state, reference.tables())
        finalize_cycle(
            state, partition_dir(home.lake, "charges", cycle=CYCLE) / "charge_lines.parquet", cycle, settings
        )


def test_a_rate_fix_on_a_final_cycle_becomes_adjustments_once(sample_home, capsys):
    final_sample_cycle(sample_home)
    rated = partition_dir(sample_home.lake, "rated", cycle=CYCLE)
    # neither a rated nor a suspended event carries the raw record text: it stays in the usage records, and the
    # suspense readers join it back by key (pipeline/raw_text.py)
    assert "raw" not in pl.read_parquet_schema(rated / "rated.parquet")
    assert "raw" not in pl.read_parquet_schema(rated / "suspended.parquet")
    with open_state(sample_home.state_db) as state:
        invoices_before = state.sql("select * from invoices order by invoice_number").pl()
    # the rate fix: RC-STD United Kingdom 0.0900 → 0.1500 a minute
    cards = sample_home.reference / "rate_cards.csv"
    cards.write_text(
        cards.read_text().replace("RC-STD,44,,0,United Kingdom,0.0900", "RC-STD,44,,0,United Kingdom,0.1500")
    )

    assert main(["--home", str(sample_home.root), "rerate", "--cycle", CYCLE]) == 0
    assert "adjustments posted" in capsys.readouterr().out
    report = partition_dir(sample_home.lake, RERATE, cycle=CYCLE)
    events = pl.read_parquet(report / "events.parquet")
    assert events.height > 0 and (events["new_rate_row"] == "RC-STD:44").all()
    # golden G2 (ACC-0001, UK fixed, 10 s → 30 s): 30 × 0.09/60 + 0.05 = 0.095 → 30 × 0.15/60 + 0.05 = 0.125
    g2 = events.filter(pl.col("account_id") == "ACC-0001").row(0, named=True)
    assert (g2["previous_charge"], g2["new_charge"], g2["delta"]) == (
        Decimal("0.095"), Decimal("0.125"), Decimal("0.03")
    )  # fmt: skip

    with open_state(sample_home.state_db) as state:
        adjustments = state.sql("select * from adjustments order by adjustment_id").pl()
        # final invoices never change
        assert state.sql("select * from invoices order by invoice_number").pl().equals(invoices_before)
    # ACC-0001's international usage line (G2 + G3): 0.095 + 0.200 = 0.295 → 0.30 invoiced;
    # now 0.125 + 0.200 = 0.325 → 0.33 (half_up); its interstate line (G1) is unchanged
    rerates = adjustments.filter(pl.col("category") == "rerate")
    acc1 = rerates.filter(pl.col("account_id") == "ACC-0001").row(0, named=True)
    assert (acc1["adjustment_id"], acc1["amount"], acc1["category"], acc1["source"], acc1["invoice_number"]) == (
        "RR-2026-10-ACC-0001-1", Decimal("0.03"), "rerate", "rerate:2026-10", None
    )  # fmt: skip

    # re-running the same rerate changes nothing and posts nothing
    with session(load_reference(sample_home.reference)) as con, open_state(sample_home.state_db) as state:
        again = rerate_cycle(con, sample_home.lake, state, CYCLE, posted_at=datetime(2026, 11, 5))
        assert state.sql("select count(*) from adjustments").fetchall()[0][0] == adjustments.height
    assert (again["changed_events"], again["adjustments_posted"]) == (0, 0)


def test_the_rated_fact_is_narrow_and_its_reader_loses_no_event(sample_home):
    """rated.parquet holds the key and the outcome only; rated_events_sql joins the normalised columns back (the
    warehouse's columns, in order, status 'rated'), and a rated event whose key left the mediated partition fails
    the read loudly instead of vanishing with its charge."""
    from pipeline.lake_fallbacks import LAKE_DATASETS

    reference, counts = rated_sample_cycle(sample_home)
    with session(reference) as con:
        wide = con.sql(rated_events_sql(sample_home.lake, CYCLE)).pl()
    fact = pl.read_parquet(partition_dir(sample_home.lake, "rated", cycle=CYCLE) / "rated.parquet")
    assert fact.columns[:2] == ["file_id", "line_no"]
    assert not {"charged_number", "account_id", "start_utc", "source_id", "cycle", "status"} & set(
        fact.columns
    )
    assert fact.height == wide.height == counts["rated"] == 863
    assert wide.columns == [name for name, _ in LAKE_DATASETS["rated"].columns]
    assert set(wide["status"]) == {"rated"} and wide["charged_number"].null_count() == 0
    assert wide.select(fact.columns).sort("file_id", "line_no").equals(fact.sort("file_id", "line_no"))

    normalised = partition_dir(sample_home.lake, "mediated", cycle=CYCLE) / "normalised.parquet"
    lost = fact.row(0, named=True)
    pl.read_parquet(normalised).filter(
        (pl.col("file_id") != lost["file_id"]) | (pl.col("line_no") != lost["line_no"])
    ).write_parquet(normalised.with_name("kept.parquet"))
    normalised.with_name("kept.parquet").replace(normalised.resolve())
    with session(reference) as con, pytest.raises(duckdb.Error, match=f"rated event {lost['file_id']}:"):
        con.sql(f"select sum(charge_amount) from ({rated_events_sql(sample_home.lake, CYCLE)})").fetchall()
    # rerating the cycle without the event stops before rating: the previous rating stays as it was
    rated = partition_dir(sample_home.lake, "rated", cycle=CYCLE)
    version = rated.resolve()
    with (
        session(reference) as con,
        open_state(sample_home.state_db) as state,
        pytest.raises(RatedEventLost, match=f"previously rated event {lost['file_id']}:"),
    ):
        rerate_cycle(con, sample_home.lake, state, CYCLE, posted_at=datetime(2026, 11, 5))
    assert rated.resolve() == version
    assert pl.read_parquet(rated / "rated.parquet").sort("file_id", "line_no").equals(fact.sort("file_id", "line_no"))


def registered_sample_cycle(home) -> Reference:
    """The sample month's files registered (intake done); its reference."""
    reference = load_reference(home.reference)
    with open_state(home.state_db) as state:
        register_landed_files(
            home, state, reference.sources, cycle=CYCLE, billing_timezone=Settings().billing_timezone
        )
    return reference


def rated_sample_cycle(home) -> tuple[Reference, dict[str, int]]:
    """The sample cycle rated once (not billed): what a rerate compares with; its reference and rating counts."""
    reference = registered_sample_cycle(home)
    with session(reference) as con:
        mediate_cycle(con, home.lake, CYCLE)
        return reference, rate_cycle(con, home.lake, CYCLE)


def rerate(home, spill_dir=None, rate=rate_cycle) -> dict[str, int]:
    """Rerate the sample cycle with the home's reference as it is."""
    with (
        session(load_reference(home.reference), spill_dir=spill_dir) as con,
        open_state(home.state_db) as state,
    ):
        return rerate_cycle(con, home.lake, state, CYCLE, posted_at=datetime(2026, 11, 5), rate=rate)


def test_an_unchanged_cycle_gives_an_empty_report_and_a_new_event_its_whole_charge(sample_home, tmp_path):
    """Rerating with no rate fix reports no event and a zero delta for every account; an event the previous
    rating did not have is reported as new (no previous status, its whole charge the delta). The previous rating
    is compared even when its version is deleted at the swap (``lake_version_grace`` 0): the rerate keeps its
    files itself, in the session's spill folder, and leaves nothing there."""
    (sample_home.reference / "settings.toml").write_text('lake_version_grace = "0"\n', encoding="utf-8")
    rated_sample_cycle(sample_home)
    lake, report = sample_home.lake, partition_dir(sample_home.lake, RERATE, cycle=CYCLE)
    spill = tmp_path / "spill"
    with session() as con:  # every rated event with its account, through the fact's reader
        usage = (
            con.sql(f"select account_id, charge_amount from ({rated_events_sql(lake, CYCLE)})")
            .pl()
            .group_by("account_id")
            .agg(pl.col("charge_amount").sum().cast(pl.Decimal(18, 6)))
        )

    unchanged = rerate(sample_home, spill)
    assert (unchanged["changed_events"], unchanged["accounts_changed"]) == (0, 0)
    assert pl.read_parquet(report / "events.parquet").height == 0
    accounts = pl.read_parquet(report / "accounts.parquet")
    assert accounts.height == usage.height > 0 and (accounts["delta"] == 0).all()
    assert accounts.select("account_id", previous="previous_usage", new="new_usage").sort("account_id").equals(
        usage.select("account_id", previous="charge_amount", new="charge_amount").sort("account_id")
    )
    assert list(spill.glob("cdrbill-rerate-*")) == []

    # the previous rating without one rated event: rerating finds it again, as a new event
    fact_path = partition_dir(lake, "rated", cycle=CYCLE) / "rated.parquet"
    fact = pl.read_parquet(fact_path)
    new = fact.row(0, named=True)
    with session() as con:
        account, number = con.sql(
            f"select account_id, charged_number from ({rated_events_sql(lake, CYCLE)}) "
            f"where file_id = {new['file_id']} and line_no = {new['line_no']}"
        ).fetchall()[0]
    fact.slice(1).write_parquet(fact_path.with_name("kept.parquet"))
    fact_path.with_name("kept.parquet").replace(fact_path.resolve())
    changed = rerate(sample_home, spill)
    events = pl.read_parquet(report / "events.parquet")
    rate_row = f"{new['rate_card_id']}:{new['prefix'] or '*'}"
    assert events.rows() == [
        (new["file_id"], new["line_no"], account, number, None, "rated", None, rate_row, None,
         new["charge_amount"], new["charge_amount"])
    ]  # fmt: skip
    accounts = pl.read_parquet(report / "accounts.parquet").filter(pl.col("delta") != 0)
    assert accounts.select("account_id", "delta").rows() == [(account, new["charge_amount"])]
    assert changed["changed_events"] == 1 and changed["accounts_changed"] == (new["charge_amount"] != 0)
    assert list(spill.glob("cdrbill-rerate-*")) == []


def test_a_previously_rated_event_without_a_new_outcome_fails_the_rerate(sample_home):
    """Rule: nothing lost — when the new rating has no outcome for an event the previous one rated (a rating that
    dropped it), the comparison fails loudly instead of leaving its charge out of the report and the deltas."""
    rated_sample_cycle(sample_home)
    lake = sample_home.lake

    dropped: dict[str, object] = {}

    def rate_dropping_one(con, lake, cycle):
        counts = rate_cycle(con, lake, cycle)
        fact_path = partition_dir(lake, "rated", cycle=cycle) / "rated.parquet"
        fact = pl.read_parquet(fact_path)
        dropped.update(fact.row(0, named=True))
        fact.slice(1).write_parquet(fact_path.with_name("kept.parquet"))
        fact_path.with_name("kept.parquet").replace(fact_path.resolve())
        rating_outcomes_view(con, lake, cycle)
        return counts

    with pytest.raises(duckdb.Error, match="has no outcome in the new rating") as failed:
        rerate(sample_home, rate=rate_dropping_one)
    assert f"previously rated event {dropped['file_id']}:{dropped['line_no']} has" in str(failed.value)
    assert not partition_dir(lake, RERATE, cycle=CYCLE).exists()


def test_rating_leaves_only_the_written_outcomes_in_the_session(sample_home):
    """After ``rate_cycle`` the passes' temp tables are gone (the session's memory goes to what runs next: a
    rerate's comparison) and ``rating_outcomes`` reads the written partition: every event, rated or suspended."""
    with session(registered_sample_cycle(sample_home)) as con:
        mediate_cycle(con, sample_home.lake, CYCLE)
        counts = rate_cycle(con, sample_home.lake, CYCLE)
        left = con.sql(
            "select table_name from information_schema.tables where table_name like 'rating%' order by 1"
        ).fetchall()
        outcomes = con.sql(
            "select count(*), count(*) filter (where rating_reason is null), sum(charge_amount) from rating_outcomes"
        ).fetchall()[0]
        fact = con.sql(
            f"select count(*), sum(charge_amount) from ({rated_events_sql(sample_home.lake, CYCLE)})"
        ).fetchall()[0]
    assert left == [("rating_outcomes",)]
    assert outcomes[:2] == (counts["rated"] + counts["suspended"], counts["rated"])
    assert (outcomes[1], outcomes[2]) == fact
