"""Rating: price the cycle's normalised events with the price book of the line's agent, plan, state and service
(declared fallback order), the call's jurisdiction, the longest-prefix destination, stepped billing increments,
connect fee, minimum and maximum, rounded once per event (``sql/jurisdiction.sql``, ``sql/rating.sql``).
Events that cannot be priced go to rating suspense with a reason."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

from pipeline.bands import band_calendar
from pipeline.engine import first_row, scalar
from pipeline.lake import lake_partition, lake_table, partition_dir, replace_partition
from pipeline.mediation import MEDIATED
from pipeline.price_books import price_book_levels
from pipeline.sql import read_sql

RATED = "rated"

# events rated in one pass of the rating SQL: a larger cycle is rated in account slices (hash of the account),
# so memory stays bounded whatever the cycle's size. Allowances, tiers and call order are per account, so a
# slice holds every event any of its accounts' charges depend on.
SLICE_EVENTS = 500_000

# from this many slices on, the events copied for slicing are ordered by slice (see rate_events)
CLUSTER_SLICES = 3

# how sql/rating.sql ends: every event's outcome, priced or with its reason (see _rate_pass, _rate_unpriced)
FINAL_SELECT = "select * from outcomes"

# the DuckDB optimizers the rating passes run without. sql/rating.sql writes each per-event join with the events
# first and the small side (the slice's destinations, their band rates, the roaming surcharges) second, and
# DuckDB builds its hash table on the second side. Its estimate of the slice's destination tables comes from the
# whole deck (600,117 rate rows, against the ~40 destinations a slice uses), so build_side_probe_side swapped
# those joins and built hash tables of the ~460k events instead (the destination join, the band-rate join):
# measured −25 to −35 % CPU for a rating pass without it. join_order, for the same misestimate, joined the
# price books by key to the destinations by key on the rate card alone (14M rows for a 50,000-prefix banded
# deck) before the events, once the events stream through both lookups (6× the pass's CPU). Without them the joins
# run in the order written: the same rows (docs/SCALE_LOG.md)
RATING_DISABLED_OPTIMIZERS = "build_side_probe_side,join_order"

# the exact charge's numerator (micro-units × the rate's unit) up to which sql/rating.sql divides in BIGINT: 2^62 /
# 10^6, so the unrounded charge's numerator × 10^6 and round_div's 2 × numerator stay inside 64 bits. A larger
# numerator (a call charged above ~76,861 at a 60 s unit) is divided in HUGEINT, exactly as before; the two paths
# give the same whole numbers (tests/test_rating.py prices calls on both sides of the bound both ways)
BIGINT_NUMERATOR_BOUND = 2**62 // 10**6

# a banded call whose billed time line lies inside the band period it starts in (policy 'start': any call) is
# priced whole in its start band, beside the calls without bands, and only the calls that cross a boundary are
# cut into pieces (sql/rating.sql: ``call_start_bands``). False cuts every banded call into pieces, its whole
# call as one piece, as before this rule: tests/test_rating_bands_by_key.py compares the two paths
WHOLE_CALLS_BY_START_BAND = True

# a deck whose rate cards have no band set (no ``rate_card_policies`` row with one) prices every call whole without
# a band: the start-band step's joins and the cut calls' path are planned away (sql/rating.sql's macro
# ``rating_has_band_sets()`` is false), so the step is not stored as a second copy of every event (~−120 MiB peak
# at 1m, docs/SCALE_LOG.md). False runs the start-band step whatever the deck:
# tests/test_rating_bands_by_key.py compares the two paths on unbanded decks
START_BANDS_ONLY_WITH_BAND_SETS = True

# the normalised columns the rating SQL reads (sql/jurisdiction.sql, sql/rating.sql): a slice copies only these
RATING_INPUT_COLUMNS = (
    "file_id", "line_no", "cycle", "account_id", "service_state", "charged_number", "called_number", "start_utc",
    "call_date", "billsec", "service", "units", "sms_chars", "event_code", "visited_country", "late_from_cycle",
)  # fmt: skip

# input columns a mediated cycle written before they existed lacks (read as null)
OPTIONAL_INPUT_COLUMNS = {"late_from_cycle": "varchar"}

# every event's outcome as the rated fact and suspense read it (``rating_core``): the passes' narrow results
# (``rating_results``: key, rating_reason, how it was priced, the destination by number) with the explanation of
# each destination (``rating_explanations``: computed once per run by sql/rating_explanations.sql, not carried
# through the passes by every event: ~10 of the 33 columns, measured in docs/SCALE_LOG.md), in the fact's
# order
CORE_VIEW = """
create or replace temp view rating_core as
select
    results.file_id,
    results.line_no,
    results.agent_id,
    results.plan_id,
    results.jurisdiction,
    results.price_book_id,
    results.price_book_level,
    results.rate_card_id,
    explanations.prefix,
    explanations.rate_jurisdiction,
    explanations.destination,
    explanations.rate_per_unit,
    results.unit_seconds,
    explanations.billing_increment,
    explanations.connect_fee,
    explanations.minimum_charge,
    explanations.maximum_charge,
    explanations.rounding_rule,
    results.band_set,
    results.band_policy,
    results.time_bands,
    results.billed_seconds,
    results.billed_units,
    results.allowance_id,
    results.included_units,
    results.charged_units,
    explanations.rate_event_code,
    results.roaming_zone,
    results.roaming_surcharge,
    results.unrounded_charge,
    results.charge_limit,
    results.charge_amount,
    results.rating_reason
from rating_results as results
left join rating_explanations as explanations using (destination_no)
"""

# every normalised event with its outcome: the normalised columns, rating_reason (null: rated; an event whose
# account is unknown to rating has no price book) and how it was priced (``rating_core``)
OUTCOMES_VIEW = """
create or replace temp view rating_outcomes as
select
    normalised.*,
    case when rating_core.file_id is null then 'NO_PRICE_BOOK' else rating_core.rating_reason end as rating_reason,
    rating_core.* exclude (file_id, line_no, rating_reason)
from normalised
left join rating_core using (file_id, line_no)
"""


def rate_events(con: duckdb.DuckDBPyConnection, slice_events: int = SLICE_EVENTS) -> duckdb.DuckDBPyRelation:
    """Rate the events of the view ``normalised``: every event once, priced (``rating_reason`` null) or with the
    reason it could not be (NO_PRICE_BOOK, NO_RATE…), as the view ``rating_outcomes`` (normalised columns +
    outcome) over the view ``rating_core`` (key + outcome). Reference tables ``accounts``,
    ``price_books``, ``rate_cards``, ``npa_nxx``, ``rate_card_policies``, ``time_bands`` and
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
    con.execute(f"create or replace temp macro rating_bigint_bound() as {BIGINT_NUMERATOR_BOUND}::hugeint")
    con.execute(f"create or replace temp macro rating_whole_by_start_band() as {WHOLE_CALLS_BY_START_BAND}")
    con.execute(f"create or replace temp macro rating_has_band_sets() as {_has_band_sets(con)}")
    # the rate cards' destinations, numbered once for every slice (the deck can hold 50,000 prefixes per card)
    con.execute(read_sql("rating_destinations.sql"))
    # how a destination's steps and shared terms are read from its rate rows, for the passes and the explanations
    con.execute(read_sql("rating_destination_steps.sql"))
    events = scalar(con, "select count(*) from normalised") or 0
    slices = max(1, -(-events // slice_events))
    present = set(con.table("normalised").columns)
    columns = ", ".join(
        c if c in present else f"null::{OPTIONAL_INPUT_COLUMNS[c]} as {c}" for c in RATING_INPUT_COLUMNS
    )
    # the events a pass could not price, rated for their reasons after the last slice (_rate_unpriced)
    con.execute(f"create or replace temp table rating_unpriced as select {columns} from normalised limit 0")
    if slices == 1:
        con.execute(f"create or replace temp view rating_input as select {columns} from normalised")
        _rate_pass(con, "create or replace temp table rating_results as ")
    else:
        # only the columns rating reads are copied, once; ``rating_input`` shows one slice at a time. From
        # CLUSTER_SLICES slices on the copy no longer fits the memory limit and each slice's scan read all of it
        # back (10M events: 1.6 CPU s a slice, 20 slices): the copy is then ordered by slice, and a slice reads
        # its own row groups only (0.16 CPU s) for the price of the sort (+4 CPU s)
        slice_of = f"(hash(account_id) % {slices})::uinteger"
        order = f" order by {slice_of}" if slices >= CLUSTER_SLICES else ""
        con.execute(
            "create or replace temp table rating_events as "
            f"select {columns}, {slice_of} as rating_slice from normalised{order}"
        )
        for index in range(slices):
            con.execute(
                "create or replace temp view rating_input as select * exclude (rating_slice) from rating_events "
                f"where rating_slice = {index}"
            )
            _rate_pass(
                con,
                "insert into rating_results " if index else "create or replace temp table rating_results as ",
            )
        con.execute("drop table rating_events")
    _rate_unpriced(con, slice_events)
    con.execute("create or replace temp table rating_explanations as " + read_sql("rating_explanations.sql"))
    con.execute(CORE_VIEW)
    con.execute(
        "drop table rating_destinations; drop table rating_card_prefix_lengths; drop table rating_rate_rows; "
        "drop view if exists rating_input; drop table if exists rating_unpriced; drop table rating_number_areas; "
        "drop macro rating_bigint_bound; drop macro table rating_destination_steps; "
        "drop macro rating_whole_by_start_band; drop macro rating_has_band_sets"
    )
    con.execute(OUTCOMES_VIEW)
    return con.table("rating_outcomes")


def _has_band_sets(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the start-band step runs: some rate card of the deck has a band set (a call of a banded card is
    priced in its time bands, or suspended NO_BAND), or START_BANDS_ONLY_WITH_BAND_SETS is off."""
    if not START_BANDS_ONLY_WITH_BAND_SETS:
        return True
    return bool(scalar(con, "select count(*) from rate_card_policies where band_set is not null"))


def _rate_pass(con: duckdb.DuckDBPyConnection, into: str) -> None:
    """One pass of the rating SQL over the events ``rating_input`` shows now, written ``into`` the outcomes.
    The pass writes the priced events only; the events it could not price (few, often none) are kept in
    ``rating_unpriced`` and rated again alone after the last slice, for the reason of each (``_rate_unpriced``)."""
    con.execute("create or replace temp table rating_number_areas as " + read_sql("jurisdiction.sql"))
    events = scalar(con, "select count(*) from rating_input") or 0
    # the rows this pass writes follow the earlier slices' (``rating_results`` is only appended to: a row's rowid
    # is its row number). The unpriced events are looked for among this pass's rows only: the anti join builds
    # on its right side (the build-side optimizer is off here), and against every earlier slice's results it
    # held the whole cycle's keys — 46M events ran out of the 1GB limit (docs/SCALE_LOG.md, "The 50M month,
    # run")
    first_row_id = 0 if into.lstrip().startswith("create") else scalar(con, "select count(*) from rating_results")
    with _rating_optimizers(con):
        priced = first_row(con, into + _rating_body() + "select *, null::varchar as rating_reason from rated")
        if (priced[0] if priced else 0) != events:
            con.execute(
                "insert into rating_unpriced select * from rating_input anti join "
                f"(select file_id, line_no from rating_results where rowid >= {int(first_row_id)}) as priced "
                "using (file_id, line_no)"
            )


def _rate_unpriced(con: duckdb.DuckDBPyConnection, slice_events: int) -> None:
    """The reason of each event the passes could not price (NO_PRICE_BOOK, NO_RATE…): the same SQL's
    ``outcomes`` over those events alone, once after the last slice rather than once per slice (each such pass
    pays the SQL's planning and its scans of the deck), in account slices of at most ``slice_events`` when many
    fail. Rule: an event fails or not, and for the same reason, whatever the other events rated with it, so the
    reasons are the ones one pass over every event would give."""
    unpriced = scalar(con, "select count(*) from rating_unpriced") or 0
    slices = -(-unpriced // slice_events)
    for index in range(slices):
        where = f" where (hash(account_id) % {slices})::uinteger = {index}" if slices > 1 else ""
        con.execute(f"create or replace temp view rating_input as select * from rating_unpriced{where}")
        con.execute("create or replace temp table rating_number_areas as " + read_sql("jurisdiction.sql"))
        with _rating_optimizers(con):
            con.execute("insert into rating_results by name " + _rating_body() + FINAL_SELECT)


def _rating_body() -> str:
    """sql/rating.sql up to its last line (``FINAL_SELECT``), for a pass to end as it needs."""
    body, final = read_sql("rating.sql").rsplit(FINAL_SELECT, 1)
    assert not final.strip(), f"sql/rating.sql must end with {FINAL_SELECT!r}"
    return body


@contextmanager
def _rating_optimizers(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """The rating statements run without RATING_DISABLED_OPTIMIZERS (the joins as written), and only they."""
    con.execute(f"set disabled_optimizers = '{RATING_DISABLED_OPTIMIZERS}'")
    try:
        yield
    finally:
        con.execute("reset disabled_optimizers")


def rate_cycle(con: duckdb.DuckDBPyConnection, lake: Path, cycle: str) -> dict[str, int]:
    """Rate one mediated cycle into ``lake/rated/cycle=C/{rated,suspended,tier_charges,data_rounding}.parquet``;
    reference tables must be registered on ``con``. ``tier_charges`` holds the graduated / volume tier charges on
    the cycle's totals (``sql/tiers.sql``), one per account and tier table, for the bill run; ``data_rounding``
    the cycle's data rounding of plans that round data per cycle (``sql/data_rounding.sql``), one per account,
    service number and price. ``rated`` is the narrow fact (key and outcome: ``RATED_FACT``), read through
    ``rated_events_sql``; afterwards ``rating_outcomes`` reads the written partition (every outcome column, the
    normalised ones but the mediation ``reason``), and the passes' temp tables are dropped."""
    normalised = lake_table(lake, MEDIATED, "normalised", cycle=cycle)
    con.execute(
        f"create or replace temp view normalised as select * from read_parquet('{normalised.as_posix()}')"
    )
    rate_events(con)
    # the rated fact is narrow: the event key and how it was priced; the normalised columns stay in the mediated
    # partition and are joined back by key by every reader (``rated_events_sql``)
    rated = con.sql(RATED_FACT)
    tier_charges = con.sql(read_sql("tiers.sql"))
    data_rounding = con.sql(read_sql("data_rounding.sql"))
    unrated = "select * from rating_core where rating_reason is not null"
    # an event of an account unknown to rating has no outcome row (NO_PRICE_BOOK): looked for by an anti join of
    # the whole cycle only when some event lacks one (every key has at most one outcome, so equal counts say none)
    if scalar(con, "select count(*) from rating_results") != scalar(con, "select count(*) from normalised"):
        unrated += " union all by name select file_id, line_no from normalised anti join rating_results using (file_id, line_no)"
    suspended = con.sql(
        f"""
        select
            normalised.* exclude (reason) replace ('suspended' as status),
            unrated.* exclude (file_id, line_no, rating_reason),
            coalesce(unrated.rating_reason, 'NO_PRICE_BOOK') as reason
        from normalised
        join ({unrated}) as unrated using (file_id, line_no)
        """
    )
    target = partition_dir(lake, RATED, cycle=cycle)
    counts = replace_partition(
        lake,
        target,
        {"rated": rated, "suspended": suspended, "tier_charges": tier_charges, "data_rounding": data_rounding},
    )
    rating_outcomes_view(con, lake, cycle)
    # the outcomes are written and ``rating_outcomes`` reads them from the partition: the passes' results (~250 MB
    # at 1M events) and the explanations leave the session, so what runs next in it (rerating's comparison, the
    # asset's metadata) has that memory
    con.execute("drop view rating_core; drop table rating_results; drop table rating_explanations")
    return counts


# the rated fact: the key and outcome of every priced event (no normalised column: ``rated_events_sql`` joins them)
RATED_FACT = """
select rating_core.* exclude (rating_reason)
from rating_core
where rating_core.rating_reason is null
"""

# a rated partition written before the narrow fact carries the normalised columns itself (this one among them)
WIDE_RATED_COLUMN = "charged_number"


def rated_events_sql(lake: Path, cycle: str) -> str:
    """A SELECT of the cycle's rated events as the bill run, statements, explanation, reconciliation and the
    warehouse read them: the narrow fact ``lake/rated/cycle=C/rated.parquet`` joined by key (file_id, line_no)
    to the cycle's ``normalised.parquet`` — the normalised columns but ``reason`` (status 'rated'),
    then the outcome columns. Rule: nothing lost — a rated event whose key is missing from the mediated
    partition fails the query (its charge would vanish), it is never dropped. A partition written before the
    narrow fact (normalised columns inside) is read as it is."""
    fact = lake_table(lake, RATED, "rated", cycle=cycle)
    if WIDE_RATED_COLUMN in pl.read_parquet_schema(fact):
        return f"select * from read_parquet('{_quoted(fact)}')"
    normalised = lake_table(lake, MEDIATED, "normalised", cycle=cycle)
    # a cycle mediated before the raw text was kept once (pipeline/raw_text.py) still carries it: left out
    dropped = "reason, raw" if "raw" in pl.read_parquet_schema(normalised) else "reason"
    cycle_text = cycle.replace("'", "''")
    lost = (
        f"error('rated event ' || fact.file_id || ':' || fact.line_no || ' of cycle {cycle_text} is "
        "missing from its mediated partition: its charge would be lost. Fix: rate the cycle again')"
    )
    # the check is the join's filter, not a column: it holds whatever columns the reader selects
    return f"""
select
    normalised.* exclude ({dropped}) replace ('rated' as status),
    fact.* exclude (file_id, line_no)
from read_parquet('{_quoted(fact)}', hive_partitioning = false) as fact
left join read_parquet('{_quoted(normalised)}') as normalised using (file_id, line_no)
where case when normalised.file_id is null then {lost} else true end
"""


def rated_events(lake: Path, cycle: str) -> pl.LazyFrame:
    """The cycle's rated events (``rated_events_sql``: the narrow fact joined to its normalised columns, nothing
    lost) as a lazy polars frame, for the readers that work in polars (statements, explanation)."""
    return duckdb.connect().sql(rated_events_sql(lake, cycle)).pl(lazy=True)


def _quoted(path: Path) -> str:
    """A path as the inside of an SQL string literal."""
    return path.as_posix().replace("'", "''")


def rating_outcomes_view(con: duckdb.DuckDBPyConnection, lake: Path, cycle: str) -> None:
    """The view ``rating_outcomes`` over the cycle's written rating: every rated and suspended event with
    ``rating_reason`` (null: rated) — what rerating compares and the asset's metadata reads."""
    target = lake_partition(lake, RATED, cycle=cycle)
    con.execute(
        f"""
        create or replace temp view rating_outcomes as
        select *, null::varchar as rating_reason from ({rated_events_sql(lake, cycle)})
        union all by name
        select * exclude (reason), reason as rating_reason
        from read_parquet('{(target / "suspended.parquet").as_posix()}')
        """
    )
