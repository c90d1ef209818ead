"""Quote: price a hypothetical event — for an account, or directly by a price book or rate card — with the
SAME rating SQL the cycle uses (``rating.rate_events``), so a quote and a bill can never disagree. A quote
prices one event alone: allowances and tiers (which depend on the rest of the cycle) are not applied; a data
session of a plan that rounds per cycle is rounded as if it were its number's only session of the cycle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from pipeline.engine import session
from pipeline.explanation import DATA_ROUNDING_COLUMNS, explanation
from pipeline.normalise import NORMALISED_SCHEMA
from pipeline.rating import rate_events
from pipeline.reference import Reference
from pipeline.sql import read_sql

QUOTE_ACCOUNT = "QUOTE"
# a normalised event as mediation hands it to rating (with the shared-contract columns)
NORMALISED_EVENT = {
    **NORMALISED_SCHEMA,
    "account_id": pl.String(),
    "service_state": pl.String(),
    "units": pl.Int64(),
    "sms_chars": pl.Int32(),
    "event_code": pl.String(),
    "visited_country": pl.String(),
    "late_from_cycle": pl.String(),  # a quote is never late usage
}


class QuoteError(ValueError):
    """A quote that cannot be made as asked; the message says what to give instead."""


@dataclass(frozen=True)
class QuoteRequest:
    """What to price: an account, or a price book / rate card (with the line's state), and the event."""

    called_number: str | None
    start_local: datetime  # wall-clock time in the line's state's time zone
    units: int  # seconds for voice; messages, bytes or events otherwise
    service: str = "voice"
    account_id: str | None = None
    price_book_id: str | None = None
    rate_card_id: str | None = None
    state: str | None = None
    from_number: str | None = None
    sms_chars: int | None = None
    event_code: str | None = None


def _scope(
    reference: Reference, request: QuoteRequest
) -> tuple[dict[str, pl.DataFrame], str, str, str | None]:
    """Reference tables for the quote, the account, its state and the calling number."""
    tables = reference.tables()
    if request.account_id:
        account = reference.accounts.filter(pl.col("account_id") == request.account_id)
        if account.height == 0:
            raise QuoteError(f"account {request.account_id} is not in accounts.csv")
        state = request.state or account["service_state"][0]
        numbers = reference.service_numbers.filter(pl.col("account_id") == request.account_id)
        caller = request.from_number or (numbers["service_number"][0] if numbers.height else None)
        return tables, request.account_id, state, caller
    card = request.rate_card_id
    if request.price_book_id:
        book = reference.price_books.filter(pl.col("price_book_id") == request.price_book_id)
        if book.height == 0:
            raise QuoteError(f"price book {request.price_book_id} is not in price_books.csv")
        card = book["rate_card_id"][0]
    if not card:
        raise QuoteError("give --account, --price-book or --rate-card")
    if card not in reference.rate_cards["rate_card_id"].to_list():
        raise QuoteError(f"rate card {card} is not in rate_cards.csv")
    state = request.state or "IL"
    tables["accounts"] = pl.DataFrame(
        {
            "account_id": [QUOTE_ACCOUNT],
            "agent_id": [None],
            "plan_id": [QUOTE_ACCOUNT],
            "activated_on": [date(1900, 1, 1)],
            "deactivated_on": [None],
        },  # fmt: skip
        schema={
            "account_id": pl.String,
            "agent_id": pl.String,
            "plan_id": pl.String,
            "activated_on": pl.Date,
            "deactivated_on": pl.Date,
        },  # fmt: skip
    )
    quote_book: dict[str, object] = {column: None for column in reference.price_books.columns} | {
        "price_book_id": request.price_book_id or f"rate card {card}",
        "plan_id": QUOTE_ACCOUNT,
        "rate_card_id": card,
        "valid_from": date(1900, 1, 1),
    }
    tables["price_books"] = pl.DataFrame([quote_book], schema=reference.price_books.schema)
    return tables, QUOTE_ACCOUNT, state, request.from_number


def quote(reference: Reference, request: QuoteRequest) -> dict[str, Any]:
    """Price one hypothetical event; returns its explanation (with ``charge`` when it could be priced, or the
    suspense reason when it could not)."""
    tables, account_id, state, caller = _scope(reference, request)
    zones = dict(reference.state_time_zones.select("state", "timezone").iter_rows())
    if state not in zones:
        raise QuoteError(f"state {state} has no time zone in state_time_zones.csv")
    start_utc = request.start_local.replace(tzinfo=ZoneInfo(zones[state])).astimezone(ZoneInfo("UTC"))
    event = {
        **{column: None for column in NORMALISED_EVENT},
        "file_id": 0,
        "line_no": 0,
        "cycle": start_utc.strftime("%Y-%m"),
        "source_id": "quote",
        "status": "normalised",
        "account_id": account_id,
        "service_state": state,
        "charged_number": caller,
        "calling_number": caller,
        "called_number": request.called_number,
        "start_utc": start_utc.replace(tzinfo=None),
        "call_date": request.start_local.date(),
        "billsec": request.units if request.service == "voice" else 0,
        "service": request.service,
        "units": request.units,
        "sms_chars": request.sms_chars,
        "event_code": request.event_code,
    }
    tables["allowances"] = reference.allowances.clear()  # a quote prices the event alone
    with session() as con:
        for name, frame in tables.items():
            con.register(name, frame)
        con.register("normalised", pl.DataFrame([event], schema=NORMALISED_EVENT))
        row = rate_events(con).pl().row(0, named=True)
        # a plan that rounds data per cycle: the session alone is its number's whole cycle (sql/data_rounding.sql)
        rounding = con.sql(read_sql("data_rounding.sql")).pl()
    if rounding.height:
        row |= {name: rounding[column][0] for column, name in DATA_ROUNDING_COLUMNS.items()}
    row["reason"] = row.pop("rating_reason")
    row["status"] = "rated" if row["reason"] is None else "suspended"
    return explanation(row)
