"""Taxes and regulatory fees: the dependency order of taxes levied on other taxes, and the per-level tax
computation of a bill run (``sql/billing_taxes.sql``)."""

from __future__ import annotations

import duckdb
import polars as pl

from pipeline.sql import read_sql

# What a tax base may name: a charge category (or its family: 'voice' covers 'voice_interstate'), or 'all'.
BASE_TOKENS = frozenset(
    {
        "all",
        "plan",
        "addon",
        "feature",
        "line",
        "equipment",  # equipment_lease, equipment_sale
        "activation",
        "installation",
        "reconnection",
        "number",  # number_port
        "other",
        "voice",
        "sms",
        "mms",
        "data",
        "vas",
    }
)


class TaxOrderError(ValueError):
    """taxes_on names an unknown tax or the taxes levied on each other form a cycle."""


def tax_levels(taxes: pl.DataFrame) -> pl.DataFrame:
    """The dependency level of every tax row (tax on tax): 0 for a tax on charges only, else one more than the
    highest level of the taxes in its ``taxes_on``. Returns ``tax_code, valid_from, tax_level``."""
    depends = {
        code: {t for t in (on or "").split("|") if t}
        for code, on in zip(taxes["tax_code"].to_list(), taxes["taxes_on"].to_list(), strict=True)
    }
    known = set(depends)
    for code, on in depends.items():
        if on - known:
            raise TaxOrderError(f"tax {code} is levied on unknown taxes {sorted(on - known)}")
    level: dict[str, int] = {}
    remaining = dict(depends)
    while remaining:
        ready = {c: on for c, on in remaining.items() if on <= set(level)}
        if not ready:
            raise TaxOrderError(f"taxes {sorted(remaining)} are levied on each other in a cycle")
        for code, on in sorted(ready.items()):
            level[code] = 1 + max((level[t] for t in on), default=-1)
            del remaining[code]
    return taxes.select(
        "tax_code",
        "valid_from",
        pl.col("tax_code").replace_strict(level, return_dtype=pl.Int32).alias("tax_level"),
    )


def compute_tax_lines(con: duckdb.DuckDBPyConnection, taxes: pl.DataFrame) -> int:
    """Fill the temp table ``tax_lines`` level by level (a tax on taxes sees the earlier levels' lines);
    ``charges`` and ``discount_lines`` must exist. Returns the number of levels."""
    levels = tax_levels(taxes)
    con.register("tax_levels", levels)
    con.execute("create or replace temp table tax_lines as select * from discount_lines limit 0")
    count = max(levels["tax_level"].to_list(), default=-1) + 1
    for level in range(count):
        con.execute("set variable tax_level = ?", [level])
        con.execute(read_sql("billing_taxes.sql"))
    return count
