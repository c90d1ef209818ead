"""Money and dates on invoices are formatted with babel, with the locale, its currency pattern and already
formatted amounts reused across calls (pipeline/documents.py): the text must stay exactly babel's own."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from babel.dates import format_date
from babel.numbers import format_currency
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.documents import _short_date, babel_locale, format_money

LOCALES = ("en_US", "es_US")

# amounts as rating and invoicing write them: cents, sub-cent charges (up to 6 places), negative credits,
# zeros of either sign, and large totals
amounts = st.one_of(
    st.decimals(min_value=Decimal("-1000000"), max_value=Decimal("1000000"), places=2),
    st.decimals(min_value=Decimal("-100"), max_value=Decimal("100"), places=6),
    st.sampled_from([Decimal("0"), Decimal("-0"), Decimal("0.00"), Decimal("-0.00"), Decimal("1.0"), Decimal("1E+3")]),
)


@settings(max_examples=400, deadline=None)
@given(amount=amounts, locale=st.sampled_from(LOCALES), currency=st.sampled_from(["USD", "EUR", "MXN"]))
def test_money_text_is_babels_whatever_was_formatted_before(amount: Decimal, locale: str, currency: str) -> None:
    for exact in (False, True):
        expected = format_currency(amount, currency, locale=locale, decimal_quantization=not exact)
        assert format_money(amount, currency, locale, exact=exact) == expected
        # the parsed locale and the cached text of an equal amount give the same
        assert format_money(amount, currency, babel_locale(locale), exact=exact) == expected


def test_equal_amounts_of_other_exponents_or_signs_print_as_babel_prints_them() -> None:
    # Decimal("-0") == Decimal("0") and both hash alike: the sign is part of the cache key
    assert format_money(Decimal("0"), "USD", "en_US") == "$0.00"
    assert format_money(Decimal("-0"), "USD", "en_US") == format_currency(Decimal("-0"), "USD", locale="en_US")
    assert format_money(Decimal("-0"), "USD", "en_US") == "-$0.00"
    # 1.5 and 1.500000 are equal: printed alike by babel (it normalises first), so sharing a cache entry is right
    assert format_money(Decimal("1.500000"), "USD", "es_US", exact=True) == format_currency(
        Decimal("1.500000"), "USD", locale="es_US", decimal_quantization=False
    )
    assert format_money(Decimal("0.012345"), "USD", "en_US", exact=True) == "$0.012345"


@given(day=st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)), locale=st.sampled_from(LOCALES))
def test_short_dates_are_babels(day: date, locale: str) -> None:
    assert _short_date(day, babel_locale(locale)) == format_date(day, "short", locale=locale)
