"""Rerating a final cycle after a rate fix: a delta report per event and account, adjustments for the next
invoice (deterministic, posted once), and final invoices that never change."""

from datetime import datetime
from decimal import Decimal

import polars as pl

from assets.cli import main
from pipeline.billing import compute_charges
from pipeline.cycles import BillCycle
from pipeline.engine import session
from pipeline.intake import register_landed_files
from pipeline.invoicing import finalize_cycle, register_inputs
from pipeline.lake import partition_dir
from pipeline.mediation import mediate_cycle
from pipeline.rating import rate_cycle
from pipeline.reference import load_reference
from pipeline.rerating import RERATE, rerate_cycle
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
    # a rated event carries no raw record text (it stays in the mediated partition); a suspended one keeps it
    assert "raw" not in pl.read_parquet_schema(rated / "rated.parquet")
    assert "raw" in pl.read_parquet_schema(rated / "suspended.parquet")
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


def test_rated_events_written_in_parts_are_the_same_events(sample_home, monkeypatch):
    """The join of outcomes to their normalised columns, split by a hash of the key into parts of
    WRITE_PART_EVENTS events (bounded memory), writes exactly the one-part files: no event lost or twice."""
    import pipeline.rating

    reference = load_reference(sample_home.reference)
    with open_state(sample_home.state_db) as state:
        register_landed_files(
            sample_home, state, reference.sources, cycle=CYCLE, billing_timezone=Settings().billing_timezone
        )
    folder = partition_dir(sample_home.lake, "rated", cycle=CYCLE)
    written = {}
    # the sample's 863 rated events: written in 1 part, then in 9
    for part_events in (pipeline.rating.WRITE_PART_EVENTS, 100):
        monkeypatch.setattr(pipeline.rating, "WRITE_PART_EVENTS", part_events)
        with session(reference) as con:
            mediate_cycle(con, sample_home.lake, CYCLE)
            counts = rate_cycle(con, sample_home.lake, CYCLE)
        written[part_events] = (
            counts,
            pl.read_parquet(folder / "rated.parquet").sort("file_id", "line_no"),
            pl.read_parquet(folder / "suspended.parquet").sort("file_id", "line_no"),
        )
    one, parts = written.values()
    assert one[0] == parts[0] and one[0]["rated"] == 863
    assert one[1].equals(parts[1]) and one[2].equals(parts[2])
