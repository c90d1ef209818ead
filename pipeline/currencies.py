"""ISO 4217 currencies: which codes exist and how many minor units (decimals) each has (USD 2, JPY 0, BHD 3),
from the CLDR data that babel ships. Every invoice amount is rounded to its account currency's minor units."""

from __future__ import annotations

import polars as pl
from babel.numbers import get_currency_precision, list_currencies

# Exact storage of invoice money: decimal(18, 3) holds every amount of a currency with up to 3 minor units.
MAX_MINOR_UNITS = 3


def currency_codes() -> list[str]:
    """The ISO 4217 currency codes babel knows (upper case, e.g. USD, CAD, JPY, BHD)."""
    return sorted(list_currencies())


def minor_units(code: str) -> int:
    """Decimals of the currency's minor unit (ISO 4217 exponent): USD 2, JPY 0, BHD 3."""
    return get_currency_precision(code)


def account_currencies(accounts: pl.DataFrame) -> pl.DataFrame:
    """Per account: its currency, the currency's minor units and the size of one minor unit in micro-units
    (USD 0.01 = 10,000 micros; JPY 1 = 1,000,000; BHD 0.001 = 1,000), the divisor that rounds micros to the
    account's minor units."""
    codes = accounts["currency"].unique().to_list()
    units = pl.DataFrame(
        {"currency": codes, "minor_units": [minor_units(c) for c in codes]},
        schema={"currency": pl.String, "minor_units": pl.Int32},
    )
    return (
        accounts.select("account_id", "currency")
        .join(units, on="currency", how="left")
        .with_columns(unit_micros=pl.lit(10, pl.Int64).pow(6 - pl.col("minor_units")).cast(pl.Int64))
    )
