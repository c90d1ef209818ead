"""The rating floor: the least work every event needs, timed step by step on ``bench.rating``'s input (the mediated
events of a bench home, the 50,000-prefix deck with time bands), to say how far ``sql/rating.sql`` is from it and
whether 1.5M events/s can be reached on this host. Not a test and not rating: speed lives here.

    .venv/bin/python -m bench.rating_floor --home /tmp/r1m-clone              # the DuckDB steps (a)-(e)
    .venv/bin/python -m bench.rating_floor --home /tmp/r1m-clone --polars     # and (a)-(d) in polars

Each step is one statement, cumulative, written to Parquet as rating writes (DuckDB's ``write_parquet`` defaults,
in a session like rating's: 2 threads, the memory limit, ``preserve_insertion_order`` off):

    a  read the columns rating reads, write them (the I/O floor)
    b  + the price book: account -> agent and plan, (plan, agent, state, service, day) -> the book of the first
       matching fallback level on its effective dates, found once per distinct key and joined back
    c  + the longest prefix of the called digits among the card's destinations (once per distinct (card, digits):
       every leading digit string as long as one of the card's prefix lengths, the longest found wins)
    d  + the money of one step: billed units (first increment, then increments), charge = billed units x rate /
       unit, rounded once by the destination's rule (``round_div``), integer micros
    e  + the time band of the start (the band calendar's period holding the start) and that band's rate
    e_narrow  (e) writing only the key and the outcome, as rating's narrow fact (not the input columns again)

With ``--narrow`` every DuckDB step writes only its key and outcome (``NARROW``): the floor of a rating that
writes its narrow fact, step by step; (a) is then the read and write of the key alone.

One JSON line per step: events, rows written, wall and CPU seconds (user + system, every thread), events/s,
events per CPU s, peak RSS of the step and the load average. The deck is prepared once before the steps (its
seconds printed apart). The floor takes what rating's deck and data need and no more: the bench deck has no
jurisdiction or event-code rows, one step per destination, no allowance, no roaming — the rules rating must
still apply to other decks are not in it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl

from bench.rating import CYCLE, cpu_seconds, enlarge, peak_rss_since_reset_mib, reset_peak_rss
from pipeline.bands import band_calendar
from pipeline.engine import first_row, scalar, session
from pipeline.home import Home
from pipeline.lake import lake_table
from pipeline.mediation import MEDIATED
from pipeline.price_books import price_book_levels
from pipeline.rating import RATING_INPUT_COLUMNS
from pipeline.reference import load_reference

STEPS = ("a", "b", "c", "d", "e", "e_narrow")

# the deck as the floor reads it, prepared once (rating numbers its destinations once per run too): a destination
# per (card, prefix) with its one step's terms and a rate per band (the bench deck has no rate without a band: step
# d prices at the destination's highest rate, step e at the start band's)
DECK_SQL = """
create or replace temp table floor_destinations as
select row_number() over (order by rate_card_id, prefix) as destination_no, *
from (
    select
        rate_card_id,
        coalesce(prefix, '') as prefix,
        length(coalesce(prefix, '')) as prefix_length,
        any_value(unit_seconds) as unit_seconds,
        any_value(first_increment_seconds) as first_increment,
        any_value(increment_seconds) as increment,
        max(micros(rate_per_unit)) as rate_micros,
        any_value(rounding_method) as rounding_method,
        [1000000, 100000, 10000, 1000, 100, 10, 1][any_value(rounding_decimals) + 1] as quantum_micros
    from rate_cards
    group by rate_card_id, coalesce(prefix, '')
);

create or replace temp table floor_card_prefix_lengths as
select distinct rate_card_id, prefix_length from floor_destinations;

create or replace temp table floor_band_rates as
select floor_destinations.destination_no, rate_cards.time_band, max(micros(rate_cards.rate_per_unit)) as rate_micros
from rate_cards
join floor_destinations
    on floor_destinations.rate_card_id = rate_cards.rate_card_id
    and floor_destinations.prefix = coalesce(rate_cards.prefix, '')
group by all;

create or replace temp table floor_band_periods as
select
    rate_card_policies.rate_card_id,
    band_calendar.state,
    band_calendar.period_start_utc,
    band_calendar.period_end_utc,
    band_calendar.time_band,
    unnest(generate_series(
        band_calendar.period_start_utc::date,
        (band_calendar.period_end_utc - interval 1 microsecond)::date,
        interval 1 day
    ))::date as utc_day
from band_calendar
join rate_card_policies
    on rate_card_policies.band_set = band_calendar.band_set
    and rate_card_policies.holidays = band_calendar.holidays;
"""

# (a) the columns rating reads
READ = f"select {', '.join(RATING_INPUT_COLUMNS)} from normalised"

# (b) the book once per distinct (plan, agent, state, service, day): the first level of the declared fallback order
# among the plan's books whose scope matches, on the day
BOOK = f"""
with
events as (
    select normalised.*, accounts.agent_id, accounts.plan_id
    from ({READ}) as normalised
    join accounts using (account_id)
),
book_keys as (
    select distinct plan_id, agent_id, service_state, service, call_date from events
),
books as (
    select
        book_keys.*,
        arg_min(price_books.price_book_id, price_book_levels.level) as price_book_id,
        arg_min(price_books.rate_card_id, price_book_levels.level) as rate_card_id
    from book_keys
    join price_books
        on price_books.plan_id = book_keys.plan_id
        and (price_books.agent_id is null or price_books.agent_id = book_keys.agent_id)
        and (price_books.state is null or price_books.state = book_keys.service_state)
        and (price_books.service is null or price_books.service = book_keys.service)
        and book_keys.call_date >= price_books.valid_from
        and (price_books.valid_to is null or book_keys.call_date < price_books.valid_to)
    join price_book_levels
        on price_book_levels.with_agent = (price_books.agent_id is not null)
        and price_book_levels.with_state = (price_books.state is not null)
        and price_book_levels.with_service = (price_books.service is not null)
    group by all
),
with_book as (
    select events.*, books.price_book_id, books.rate_card_id
    from events
    join books
        on books.plan_id = events.plan_id
        and books.agent_id = events.agent_id
        and books.service_state = events.service_state
        and books.service = events.service
        and books.call_date = events.call_date
)
"""

# (c) the longest prefix once per distinct (card, called digits), joined back
PREFIX = (
    BOOK
    + """,
with_digits as (
    select *, coalesce(ltrim(called_number, '+'), '') as called_digits from with_book
),
digit_keys as (
    select distinct rate_card_id, called_digits from with_digits
),
longest as (
    select
        digit_keys.rate_card_id,
        digit_keys.called_digits,
        max(floor_destinations.prefix_length * 1000000000 + floor_destinations.destination_no) % 1000000000
            as destination_no
    from digit_keys
    join floor_card_prefix_lengths using (rate_card_id)
    join floor_destinations
        on floor_destinations.rate_card_id = digit_keys.rate_card_id
        and floor_destinations.prefix = left(digit_keys.called_digits, floor_card_prefix_lengths.prefix_length)
    group by all
),
with_destination as (
    select with_digits.* exclude (called_digits), longest.destination_no
    from with_digits
    join longest
        on longest.rate_card_id = with_digits.rate_card_id
        and longest.called_digits = with_digits.called_digits
)
"""
)

# (d) one step's money, in integer micros, rounded once by the destination's rule
MONEY = (
    PREFIX
    + """,
with_terms as (
    select
        with_destination.*,
        greatest(coalesce(with_destination.units, with_destination.billsec), 0) as rating_units,
        floor_destinations.unit_seconds,
        floor_destinations.first_increment,
        floor_destinations.increment,
        floor_destinations.rate_micros,
        floor_destinations.rounding_method,
        floor_destinations.quantum_micros
    from with_destination
    join floor_destinations using (destination_no)
),
billed as (
    select
        * exclude (first_increment, increment),
        case
            when rating_units <= 0 then 0
            when rating_units <= first_increment then first_increment
            else first_increment + (rating_units - first_increment + increment - 1) // increment * increment
        end as billed_units
    from with_terms
)
"""
)

CHARGE = """
    round_div(billed_units * {rate}, unit_seconds * quantum_micros, rounding_method) * quantum_micros
        as charge_micros
"""

# (e) the band of the start: the period of the card's band set and the line's state holding the start
BAND = (
    MONEY
    + """,
banded as (
    select billed.* exclude (rate_micros), start_period.time_band, floor_band_rates.rate_micros
    from billed
    join floor_band_periods as start_period
        on start_period.rate_card_id = billed.rate_card_id
        and start_period.state = billed.service_state
        and start_period.utc_day = billed.start_utc::date
        and start_period.period_start_utc <= billed.start_utc
        and start_period.period_end_utc > billed.start_utc
    join floor_band_rates
        on floor_band_rates.destination_no = billed.destination_no
        and floor_band_rates.time_band = start_period.time_band
)
"""
)

QUERIES = {
    "a": READ,
    "b": BOOK + "select * from with_book",
    "c": PREFIX + "select * from with_destination",
    "d": MONEY
    + "select * exclude (rate_micros, rounding_method, quantum_micros), "
    + CHARGE.format(rate="rate_micros")
    + " from billed",
    "e": BAND
    + "select * exclude (rate_micros, rounding_method, quantum_micros), "
    + CHARGE.format(rate="rate_micros")
    + " from banded",
    # (e) writing the key and the outcome only, as rating's narrow fact does (the input columns are not rewritten)
    "e_narrow": BAND
    + "select file_id, line_no, price_book_id, rate_card_id, destination_no, time_band, "
    + "billed_units, "
    + CHARGE.format(rate="rate_micros")
    + " from banded",
}


# --narrow: each step writes the key and the outcome found so far only (as rating's narrow fact), so a step reads
# only the columns it needs (DuckDB prunes the rest): (a) is then the read of the key and its write
NARROW = {
    "a": "file_id, line_no",
    "b": "file_id, line_no, price_book_id, rate_card_id",
    "c": "file_id, line_no, price_book_id, rate_card_id, destination_no",
    "d": "file_id, line_no, price_book_id, rate_card_id, destination_no, billed_units, charge_micros",
    "e": "file_id, line_no, price_book_id, rate_card_id, destination_no, time_band, billed_units, charge_micros",
}
NARROW["e_narrow"] = NARROW["e"]


def prepare_deck(con: duckdb.DuckDBPyConnection) -> float:
    """The deck as the floor reads it (``DECK_SQL``) for the events of the view ``normalised``, with the price
    book levels and the band calendar of their days; returns the seconds it took."""
    first_day, last_day = first_row(
        con, "select min(start_utc)::date - 1, max(start_utc)::date + 2 from normalised"
    ) or (None, None)
    con.register("price_book_levels", price_book_levels())
    con.register("band_calendar", band_calendar(
        con.table("time_bands").pl(), con.table("rate_card_policies").pl(),
        con.table("state_time_zones").pl(),
        first_day, last_day,
    ))  # fmt: skip
    started = time.perf_counter()
    con.execute(DECK_SQL)
    return time.perf_counter() - started


def load() -> str:
    """The 1-minute load average (the machine is shared: every number is given with it)."""
    return Path("/proc/loadavg").read_text(encoding="ascii").split()[0]


def timed(events: int, step: str, engine: str, run: Callable[[], int]) -> dict:
    """Run one step, return its line: rows written, wall and CPU seconds, events/s, peak RSS, load."""
    load_before = load()
    reset_peak_rss()
    started, cpu_started = time.perf_counter(), cpu_seconds()
    rows = run()
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    return {
        "engine": engine, "step": step, "events": events, "rows": rows, "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2), "events_per_s": round(events / wall), "events_per_cpu_s": round(events / cpu),
        "peak_rss_mib": peak_rss_since_reset_mib(), "load": f"{load_before} -> {load()}",
    }  # fmt: skip


def duckdb_step(con: duckdb.DuckDBPyConnection, step: str, out: Path, narrow: bool = False) -> int:
    """Step ``step`` written to ``out`` as rating writes its partition (``write_parquet``), with ``narrow`` only
    its key and outcome columns; returns its rows."""
    query = f"select {NARROW[step]} from ({QUERIES[step]})" if narrow else QUERIES[step]
    con.sql(query).write_parquet(str(out))
    return pl.scan_parquet(out).select(pl.len()).collect().item()


def polars_steps(home: Home, tables: dict[str, pl.DataFrame], normalised: Path) -> dict[str, pl.LazyFrame]:
    """Steps (a)-(d) as polars lazy frames (the same rules as the DuckDB statements), for a streaming sink."""
    read = pl.scan_parquet(normalised).select(RATING_INPUT_COLUMNS)
    accounts = tables["accounts"].lazy().select("account_id", "agent_id", "plan_id")
    events = read.join(accounts, on="account_id")
    keys = ["plan_id", "agent_id", "service_state", "service", "call_date"]
    levels = price_book_levels().lazy()
    books = (
        events.select(keys).unique()
        .join(tables["price_books"].lazy(), on="plan_id", suffix="_book")
        .filter(
            (pl.col("agent_id_book").is_null() | (pl.col("agent_id_book") == pl.col("agent_id")))
            & (pl.col("state").is_null() | (pl.col("state") == pl.col("service_state")))
            & (pl.col("service_book").is_null() | (pl.col("service_book") == pl.col("service")))
            & (pl.col("call_date") >= pl.col("valid_from"))
            & (pl.col("valid_to").is_null() | (pl.col("call_date") < pl.col("valid_to")))
        )
        .with_columns(
            with_agent=pl.col("agent_id_book").is_not_null(), with_state=pl.col("state").is_not_null(),
            with_service=pl.col("service_book").is_not_null(),
        )
        .join(levels, on=["with_agent", "with_state", "with_service"])
        .sort("level").group_by(keys).agg(pl.col("price_book_id").first(), pl.col("rate_card_id").first())
    )  # fmt: skip
    with_book = events.join(books, on=keys)
    deck = tables["floor_destinations"].lazy()
    lengths = tables["floor_card_prefix_lengths"].lazy()
    with_digits = with_book.with_columns(
        called_digits=pl.col("called_number").str.strip_chars_start("+").fill_null("")
    )
    longest = (
        with_digits.select("rate_card_id", "called_digits").unique()
        .join(lengths, on="rate_card_id")
        .with_columns(prefix=pl.col("called_digits").str.slice(0, pl.col("prefix_length")))
        .join(deck.select("rate_card_id", "prefix", "prefix_length", "destination_no"),
              on=["rate_card_id", "prefix", "prefix_length"])
        .sort("prefix_length").group_by("rate_card_id", "called_digits").agg(pl.col("destination_no").last())
    )  # fmt: skip
    with_destination = with_digits.join(longest, on=["rate_card_id", "called_digits"]).drop("called_digits")
    units = pl.max_horizontal(pl.coalesce("units", "billsec"), pl.lit(0))
    first, inc = pl.col("first_increment"), pl.col("increment")
    billed = (
        pl.when(units <= 0).then(0).when(units <= first).then(first)
        .otherwise(first + (units - first + inc - 1) // inc * inc)
    )  # fmt: skip
    money = (
        with_destination.join(
            deck.select("destination_no", "unit_seconds", "first_increment", "increment", "rate_micros",
                        "rounding_method", "quantum_micros"), on="destination_no")
        .with_columns(billed_units=billed)
        .with_columns(numerator=pl.col("billed_units") * pl.col("rate_micros"),
                      denominator=pl.col("unit_seconds") * pl.col("quantum_micros"))
        .with_columns(quotient=pl.col("numerator") // pl.col("denominator"),
                      twice_rest=2 * (pl.col("numerator") % pl.col("denominator")))
        # the bench deck's two rules on non-negative integers: half_up, half_even (round_div's, sql/macros.sql)
        .with_columns(charge_micros=(pl.col("quotient") + pl.when(
            (pl.col("twice_rest") > pl.col("denominator"))
            | ((pl.col("twice_rest") == pl.col("denominator"))
               & ((pl.col("rounding_method") == "half_up") | (pl.col("quotient") % 2 == 1)))
        ).then(1).otherwise(0)) * pl.col("quantum_micros"))
        .drop("first_increment", "increment", "rate_micros", "rounding_method", "quantum_micros", "numerator",
              "denominator", "quotient", "twice_rest")
    )  # fmt: skip
    return {"a": read, "b": with_book, "c": with_destination, "d": money}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", required=True, help="a bench home, mediated (bench.rating prepares one)")
    parser.add_argument("--prefixes", type=int, default=50000)
    parser.add_argument("--no-bands", action="store_true")
    parser.add_argument("--memory-limit", default="1GB")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", default=",".join(STEPS), help="which DuckDB steps, e.g. 'a,e'")
    parser.add_argument("--polars", action="store_true", help="also steps (a)-(d) in polars (streaming sink)")
    parser.add_argument(
        "--narrow", action="store_true", help="each DuckDB step writes its key and outcome only"
    )
    parser.add_argument("--out", help="keep each step's Parquet file in this folder (default: deleted)")
    args = parser.parse_args()
    home = Home(Path(args.home))
    normalised = lake_table(home.lake, MEDIATED, "normalised", cycle=CYCLE)
    # as bench.rating: the reference is handed to the session and not kept
    reference = enlarge(load_reference(home.reference), args.prefixes, not args.no_bands)
    (home.root / "tmp").mkdir(parents=True, exist_ok=True)
    out = (
        Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="rating-floor-", dir=home.root / "tmp"))
    )
    out.mkdir(parents=True, exist_ok=True)
    try:
        with session(reference, memory_limit=args.memory_limit, spill_dir=home.root / "tmp") as con:
            del reference
            con.execute(f"set threads = {args.threads}")
            con.execute(
                f"create or replace temp view normalised as select * from read_parquet('{normalised}')"
            )
            deck_s = prepare_deck(con)
            events = scalar(con, "select count(*) from normalised")
            print(json.dumps({
                "events": events, "destinations": scalar(con, "select count(*) from floor_destinations"),
                "deck_prepared_s": round(deck_s, 2), "threads": args.threads, "duckdb": duckdb.__version__,
                "polars": pl.__version__, "cpus": os.cpu_count(),
            }), flush=True)  # fmt: skip
            engine = "duckdb-narrow" if args.narrow else "duckdb"
            for step in args.steps.split(","):

                def write(step: str = step) -> int:
                    return duckdb_step(con, step, out / f"{step}.parquet", args.narrow)

                print(json.dumps(timed(events, step, engine, write)), flush=True)
            if args.polars:
                tables = {
                    name: con.table(name).pl()
                    for name in ("accounts", "price_books", "floor_destinations", "floor_card_prefix_lengths")
                }
        if args.polars:
            frames = polars_steps(home, tables, normalised)
            for step, frame in frames.items():

                def sink(step: str = step, frame: pl.LazyFrame = frame) -> int:
                    path = out / f"polars-{step}.parquet"
                    frame.sink_parquet(path)
                    return pl.scan_parquet(path).select(pl.len()).collect().item()

                print(json.dumps(timed(events, step, "polars", sink)), flush=True)
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
