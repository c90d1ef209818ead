"""Rating: price the cycle's normalised events with the price book of the line's agent, plan, state and service
(declared fallback order), the call's jurisdiction, the longest-prefix destination, stepped billing increments,
connect fee, minimum and maximum, rounded once per event (``sql/jurisdiction.sql``, ``sql/rating.sql``).
Events that cannot be priced go to rating suspense with a reason."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipeline.bands import band_calendar
from pipeline.engine import first_row, scalar
from pipeline.lake import partition_dir, replace_partition
from pipeline.mediation import MEDIATED
from pipeline.price_books import price_book_levels
from pipeline.sql import read_sql

RATED = "rated"

# events rated in one pass of the rating SQL: a larger cycle is rated in account slices (hash of the account),
# so memory stays bounded whatever the cycle's size. Allowances, tiers and call order are per account, so a
# slice holds every event any of its accounts' charges depend on.
SLICE_EVENTS = 500_000


def rate_events(con: duckdb.DuckDBPyConnection, slice_events: int = SLICE_EVENTS) -> duckdb.DuckDBPyRelation:
    """Rate the events of the view ``normalised`` into the temp table ``rating_outcomes``: every event once,
    priced (``rating_reason`` null) or with the reason it could not be (NO_PRICE_BOOK, NO_RATE). Reference
    tables ``accounts``, ``price_books``, ``rate_cards``, ``npa_nxx``, ``rate_card_policies``, ``time_bands`` and
    ``state_time_zones`` must be registered on ``con``; the band calendar is computed for the events' days.
    More than ``slice_events`` events are rated in account slices of about that size (bounded memory); the
    result is the same, as every charge depends only on its own account's events."""
    con.register("price_book_levels", price_book_levels())
    first_day, last_day = first_row(
        con,
        "select coalesce(min(start_utc), now())::date - 1, coalesce(max(start_utc), now())::date + 2 from normalised",
    ) or (None, None)
    con.register(
        "band_calendar",
        band_calendar(
            con.table("time_bands").pl(),
            con.table("rate_card_policies").pl(),
            con.table("state_time_zones").pl(),
            first_day,
            last_day,
        ),
    )
    events = scalar(con, "select count(*) from normalised") or 0
    slices = max(1, -(-events // slice_events))
    if slices == 1:
        _rate_pass(con, "create or replace temp table rating_outcomes as ")
        return con.table("rating_outcomes")
    # the view ``normalised`` is pointed at one slice at a time, then back at all the events
    con.execute("create or replace temp table rating_events as select * from normalised")
    try:
        for index in range(slices):
            con.execute(
                "create or replace temp view normalised as select * from rating_events "
                f"where hash(account_id) % {slices} = {index}"
            )
            _rate_pass(
                con,
                "insert into rating_outcomes "
                if index
                else "create or replace temp table rating_outcomes as ",
            )
    finally:
        con.execute("create or replace temp view normalised as select * from rating_events")
    return con.table("rating_outcomes")


def _rate_pass(con: duckdb.DuckDBPyConnection, into: str) -> None:
    """One pass of the rating SQL over the events ``normalised`` shows now, written ``into`` the outcomes."""
    con.execute("create or replace temp table rating_jurisdiction as " + read_sql("jurisdiction.sql"))
    con.execute(into + read_sql("rating.sql"))


def rate_cycle(con: duckdb.DuckDBPyConnection, lake: Path, cycle: str) -> dict[str, int]:
    """Rate one mediated cycle into ``lake/rated/cycle=C/{rated,suspended,tier_charges}.parquet``; reference
    tables must be registered on ``con``. ``tier_charges`` holds the graduated / volume tier charges on the
    cycle's totals (``sql/tiers.sql``), one per account and tier table, for the bill run."""
    normalised = partition_dir(lake, MEDIATED, cycle=cycle) / "normalised.parquet"
    con.execute(
        f"create or replace temp view normalised as select * from read_parquet('{normalised.as_posix()}')"
    )
    rate_events(con)
    rated = con.sql(
        "select * exclude (rating_reason, reason) replace ('rated' as status) "
        "from rating_outcomes where rating_reason is null"
    )
    tier_charges = con.sql(read_sql("tiers.sql"))
    suspended = con.sql(
        "select * exclude (rating_reason, reason) replace ('suspended' as status), rating_reason as reason "
        "from rating_outcomes where rating_reason is not null"
    )
    return replace_partition(
        lake,
        partition_dir(lake, RATED, cycle=cycle),
        {"rated": rated, "suspended": suspended, "tier_charges": tier_charges},
    )
