"""The exact-money macros of sql/macros.sql against Python's Decimal, over the whole range of the amounts the
reference and the invoices hold."""

from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.engine import session

LARGEST = 10**12 - Decimal("0.000001")  # the largest DECIMAL(18, 6)


@pytest.fixture(scope="module")
def con():
    with session() as connection:
        yield connection


@settings(max_examples=200, deadline=None)
@given(st.decimals(min_value=-LARGEST, max_value=LARGEST, places=6))
@example(Decimal("999999.999999"))  # the last amount whose product fits DECIMAL(18, 6)'s 64 bits
@example(Decimal("1000000"))  # the first taken in DECIMAL(38, 6)
@example(Decimal("-1000000.000001"))
@example(LARGEST)
@example(-LARGEST)
def test_micros_is_the_amount_in_whole_micro_units_at_any_size(con, amount):
    # micros(x) = x × 10^6 exactly, for every type an amount is held in (money columns are DECIMAL(18, 6), invoice
    # money DECIMAL(18, 3), a per-line count an integer); from one million on the 64-bit product would overflow
    as_18_6 = con.execute("select micros(?::decimal(18, 6))", [str(amount)]).fetchone()[0]
    as_38_6 = con.execute("select micros(?::decimal(38, 6))", [str(amount)]).fetchone()[0]
    cents = amount.quantize(Decimal("0.001"))
    as_18_3 = con.execute("select micros(?::decimal(18, 3))", [str(cents)]).fetchone()[0]
    whole = int(amount)
    as_bigint = con.execute("select micros(?::bigint)", [whole]).fetchone()[0]
    assert as_18_6 == as_38_6 == amount.scaleb(6)
    assert as_18_3 == cents.scaleb(6)
    assert as_bigint == whole * 10**6
