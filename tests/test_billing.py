"""Bill run charges on small hand-checked accounts: recurring charges prorated by actual days (in arrears and in
advance, plan changes), one-time charges and equipment, discounts, and usage lines."""

from decimal import Decimal

import polars as pl
from billrun_fixtures import account, amounts, bill, plan, rated, table, tax
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.engine import session
from pipeline.sql import read_sql

D = Decimal


def test_whole_month_usage_and_tax():
    lines = bill({"accounts": table("accounts", account("A")), "taxes": table("taxes", tax("IL-T", "IL", "7.00"))},
                 rated(("A", "+13125550100", "IL", 84, "0.028"), ("A", "+13125550100", "IL", 30, "0.0955")))  # fmt: skip
    # usage 0.028 + 0.0955 = 0.1235 → half_up 0.12; tax 7% × (30.00 + 0.12 = 30.12) = 2.1084 → 2.11
    assert amounts(lines) == [
        ("recurring", "P", D("30.00")),
        ("usage", None, D("0.12")),
        ("taxes", "IL-T", D("2.11")),
    ]


def test_activation_and_deactivation_are_prorated_by_actual_days():
    lines = bill({"accounts": table("accounts", account("A", "TX", "2026-10-16"),
                                    account("B", "TX", "2024-01-01", "2026-10-20"))})  # fmt: skip
    recurring = lines.filter(pl.col("section") == "recurring")
    # A: 16 of 31 days: 30 × 16 / 31 = 15.4838… → 15.48; B: deactivated on the 20th: 19 days → 18.3870… → 18.39
    assert recurring.select("account_id", "quantity", "amount").rows() == [
        ("A", D(16), D("15.48")), ("B", D(19), D("18.39")),
    ]  # fmt: skip
    assert recurring["description"].to_list() == ["Plan P — Oct 16–Oct 31 (16 of 31 days)",
                                                  "Plan P — Oct 1–Oct 19 (19 of 31 days)"]  # fmt: skip


def test_accounts_outside_the_cycle_are_not_billed():
    lines = bill({"accounts": table("accounts", account("A", activated="2026-11-01"),
                                    account("B", activated="2025-01-01", deactivated="2026-10-01"))})  # fmt: skip
    assert lines.height == 0


def test_a_mid_cycle_plan_change_charges_each_plan_for_its_days():
    lines = bill({
        "accounts": table("accounts", account("A", plan="Q")),
        "plans": table("plans", plan("P", "30.00"), plan("Q", "62.00")),
        "plan_changes": table("plan_changes", {"account_id": "A", "effective_on": "2026-10-11",
                                               "old_plan_id": "P", "new_plan_id": "Q"}),
    })  # fmt: skip
    # P Oct 1–10: 30.00 × 10 / 31 = 9.677… → 9.68; Q Oct 11–31: 62.00 × 21 / 31 = 42.00 exactly
    assert lines.select("code", "quantity", "amount").rows() == [
        ("P", D(10), D("9.68")),
        ("Q", D(21), D("42.00")),
    ]


def products(*rows: tuple[str, str, str]) -> pl.DataFrame:
    return table("products", *({"product_id": p, "product_name": p, "product_type": "addon", "monthly_charge": m,
                                 "billed": b, "provider": "Partner Co"} for p, m, b in rows))  # fmt: skip


def subscription(sid: str, product: str, start: str, end: str = "", quantity: str = "1") -> dict[str, str]:
    return {"subscription_id": sid, "account_id": "A", "product_id": product, "quantity": quantity,
            "valid_from": start, "valid_to": end}  # fmt: skip


def test_add_ons_billed_in_advance_credit_unused_days_and_catch_up_new_ones():
    lines = bill({
        "accounts": table("accounts", account("A")),
        "products": products(("OLD", "9.30", "advance"), ("NEW", "15.50", "advance"), ("ARR", "3.10", "arrears")),
        "subscriptions": table("subscriptions", subscription("S1", "OLD", "2025-05-01", "2026-10-21"),
                               subscription("S2", "NEW", "2026-10-21"),
                               subscription("S3", "ARR", "2026-10-21", quantity="2"),
                               subscription("S4", "OLD", "2025-01-01", "2026-09-10")),  # ended and credited before
    })  # fmt: skip
    addons = lines.filter(pl.col("category") == "addon").select("code", "quantity", "amount", "provider")
    # OLD was billed the whole of October in advance; it ended on the 21st: 11 unused days credited:
    #   9.30 × 11 / 31 = 3.30 → −3.30; nothing for November.
    # NEW began on the 21st: 11 October days caught up, 15.50 × 11 / 31 = 5.50, and November in advance 15.50.
    # ARR (arrears) × 2 for 11 days: 3.10 × 2 × 11 / 31 = 2.20.
    assert sorted(addons.rows()) == [
        ("ARR", D(11), D("2.20"), "Partner Co"),
        ("NEW", D(11), D("5.50"), "Partner Co"),
        ("NEW", D(30), D("15.50"), "Partner Co"),
        ("OLD", D(-11), D("-3.30"), "Partner Co"),
    ]
    assert "credit for unused days Oct 21–Oct 31 (11 of 31 days)" in " ".join(lines["description"])


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["0.01", "19.99", "34.99", "49.00", "1234.57"]), st.sampled_from(["2026-02", "2026-10", "2026-11"]),
       st.sampled_from(["advance", "arrears"]))  # fmt: skip
def test_a_whole_cycle_prorates_to_the_full_charge(monthly, key, billed):
    from pipeline.cycles import BillCycle

    lines = bill({"accounts": table("accounts", account("A", activated="2025-01-01")),
                  "plans": table("plans", plan("P", monthly)), "products": products(("X", monthly, billed)),
                  "subscriptions": table("subscriptions", subscription("S", "X", "2025-01-01"))},
                 cycle=BillCycle.parse(key))  # fmt: skip
    # a line active through this and the next cycle: exactly one monthly charge each, whatever the month length
    assert lines["amount"].to_list() == [D(monthly), D(monthly)]


def test_orders_and_equipment_by_serial_number():
    lines = bill({
        "accounts": table("accounts", account("A")),
        "orders": table("orders",
                        {"order_id": "O1", "account_id": "A", "charge_date": "2026-10-05", "charge_type": "installation",
                         "description": "Installation visit", "amount": "75.00"},
                        {"order_id": "O2", "account_id": "A", "charge_date": "2026-11-01", "charge_type": "other",
                         "description": "Next month", "amount": "1.00"}),
        "equipment": table("equipment",
                           {"serial_number": "SN-1", "account_id": "A", "model": "Phone", "ownership": "sale",
                            "price": "120.00", "valid_from": "2026-10-05"},
                           {"serial_number": "SN-2", "account_id": "A", "model": "Router", "ownership": "lease",
                            "price": "6.20", "valid_from": "2026-10-22"}),
    })  # fmt: skip
    # plan 30.00; lease 6.20 × 10 / 31 = 2.00; sale 120.00 and the installation in October; O2 is November's
    assert lines.select("section", "code", "description", "amount").rows() == [
        ("recurring", "P", "Plan P — Oct 1–Oct 31", D("30.00")),
        ("recurring", "SN-2", "Equipment lease: Router, S/N SN-2 — Oct 22–Oct 31 (10 of 31 days)", D("2.00")),
        ("one_time", "O1", "Installation visit", D("75.00")),
        ("one_time", "SN-1", "Equipment sale: Phone, S/N SN-1", D("120.00")),
    ]


def discount(did: str, method: str, value: str, scope: str, **extra: str) -> dict[str, str]:
    return {"discount_id": did, "description": did, "method": method, "value": value, "scope": scope,
            "valid_from": "2026-01-01", **extra}  # fmt: skip


def test_discounts_by_scope_tenure_promotion_window_and_cap():
    lines = bill({
        "accounts": table("accounts", account("A", activated="2024-01-01"), account("B", activated="2026-06-01")),
        "discounts": table("discounts",
                           discount("LOYAL", "percent", "10", "plan", min_tenure_months="24"),
                           discount("USAGE", "percent", "50", "usage", target="voice", account_id="B"),
                           discount("FLAT", "amount", "100.00", "bill", account_id="B"),
                           discount("OVER", "amount", "1", "bill", account_id="A", max_cycles="3",
                                    valid_from="2026-07-15")),
        "taxes": table("taxes", tax("IL-T", "IL", "10.00"), tax("IL-G", "IL", "1.00", discounts_reduce_base="no")),
    }, rated(("B", "+13125550100", "IL", 60, "1.0050")))  # fmt: skip
    # A (tenure 33 months ≥ 24): LOYAL 10% × 30.00 = −3.00; OVER began in July with 3 cycles (Jul, Aug, Sep): gone.
    #   IL-T 10% × (30.00 − 3.00) = 2.70; IL-G ignores discounts: 1% × 30.00 = 0.30
    assert amounts(lines, "A") == [("recurring", "P", D("30.00")), ("discounts", "LOYAL", D("-3.00")),
                                   ("taxes", "IL-G", D("0.30")), ("taxes", "IL-T", D("2.70"))]  # fmt: skip
    # B (tenure 4 months): usage 1.005 → 1.01, USAGE 50% → −0.505 → −0.51 (half_up); FLAT 100.00 is capped at
    #   the bill: plan first −30.00, then what USAGE left of usage, 1.01 − 0.51 = 0.50 → −0.50; IL-T on 0.00: none;
    #   and IL-G on 31.01: 0.3101 → 0.31
    assert amounts(lines, "B") == [
        ("recurring", "P", D("30.00")), ("usage", None, D("1.01")),
        ("discounts", "FLAT", D("-30.00")), ("discounts", "FLAT", D("-0.50")), ("discounts", "USAGE", D("-0.51")),
        ("taxes", "IL-G", D("0.31")),
    ]  # fmt: skip


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from(["0.00", "9.99", "30.00"]),
    st.lists(st.sampled_from(["0.0100", "1.2345", "25.0000"]), max_size=3),
    st.lists(
        st.tuples(st.sampled_from(["percent", "amount"]), st.sampled_from(["5", "60", "100", "250.00"]),
                  st.sampled_from(["plan", "usage", "bill"])),
        min_size=1, max_size=4,
    ),
)  # fmt: skip
def test_discounts_never_take_a_bill_below_zero(monthly, charges, offers):
    lines = bill({"accounts": table("accounts", account("A")), "plans": table("plans", plan("P", monthly)),
                  "discounts": table("discounts", *(discount(f"D{i}", method, value, scope)
                                                    for i, (method, value, scope) in enumerate(offers)))},
                 rated(*(("A", "+13125550100", "IL", 60, c) for c in charges)))  # fmt: skip
    discounts = lines.filter(pl.col("section") == "discounts")["amount"]
    assert all(amount < 0 for amount in discounts)
    for scope in ("recurring", "usage"):
        tax_category = "plan" if scope == "recurring" else "voice"
        charged = lines.filter(pl.col("section") == scope)["amount"].sum()
        taken = lines.filter(pl.col("section") == "discounts", pl.col("tax_category") == tax_category)[
            "amount"
        ].sum()
        assert charged + taken >= 0  # each charge category stays at or above zero


def tier_charges(totals: list[tuple[str, str, str, int]], *tiers: dict[str, str]) -> pl.DataFrame:
    """The tier charges rating's own ``sql/tiers.sql`` prices on these (account, plan, service, units) totals."""
    outcomes = pl.DataFrame(totals, schema={"account_id": pl.String, "plan_id": pl.String, "service": pl.String,
                                            "charged_units": pl.Int64}, orient="row")  # fmt: skip
    with session() as con:
        con.register("rating_outcomes", outcomes.with_columns(rating_reason=pl.lit(None, pl.String)))
        con.register("tiers", table("tiers", *tiers))
        return con.sql(read_sql("tiers.sql")).pl()


def tier(tier_id: str, mode: str, start: int, price: str, service: str = "mms") -> dict[str, str]:
    return {"tier_id": tier_id, "plan_id": "P", "service": service, "mode": mode, "from_units": str(start),
            "price_per_unit": price}  # fmt: skip


def test_tier_charges_are_usage_lines_taxed_as_their_service():
    charges = tier_charges(
        [("A", "P", "mms", 1234), ("B", "P", "mms", 1234), ("B", "P", "sms", 0)],
        tier("T-MMS", "graduated", 0, "0.10"), tier("T-MMS", "graduated", 1000, "0.05"),
        tier("T-SMS", "volume", 0, "0.02", "sms"), tier("T-SMS", "volume", 500, "0.01", "sms"),
    )  # fmt: skip
    lines = bill(
        {
            "accounts": table("accounts", account("A"), account("B", "TX")),
            "taxes": table("taxes", tax("IL-T", "IL", "7.00", base="mms")),
        },  # fmt: skip
        tier_charges=charges,
    )
    # A graduated on 1234 messages: 1000 × 0.10 + 234 × 0.05 = 100.00 + 11.70 = 111.70; tax on mms only (the
    # plan is outside its base): 7% × 111.70 = 7.819 → half_up 7.82. B in TX (no tax): same 111.70, and its
    # empty SMS table (0 messages, volume) costs 0 × 0.02 = 0.00 and is still shown.
    assert amounts(lines, "A") == [
        ("recurring", "P", D("30.00")),
        ("usage", "T-MMS", D("111.70")),
        ("taxes", "IL-T", D("7.82")),
    ]
    assert amounts(lines, "B") == [
        ("recurring", "P", D("30.00")),
        ("usage", "T-MMS", D("111.70")),
        ("usage", "T-SMS", D("0.00")),
    ]
    tiered = lines.filter((pl.col("account_id") == "A") & (pl.col("section") == "usage")).row(0, named=True)
    assert (tiered["category"], tiered["tax_category"], tiered["jurisdiction"], tiered["quantity"]) == (
        "mms_tier", "mms", "IL", D(1234))  # fmt: skip
    assert tiered["description"] == (
        "Picture messages, graduated tiers on 1234 messages this cycle (1000 × 0.100000 + 234 × 0.050000)"
    )


def test_a_one_time_charge_of_a_million_or_more_is_billed_exactly():
    # money reaches the bill run as whole micro-units: 1,250,000.00 is 1.25 × 10^12 micros, past the 18 digits a
    # DECIMAL(18, 6) product can hold; the charge must be billed exactly, not refused with an overflow
    lines = bill({
        "accounts": table("accounts", account("A")),
        "orders": table("orders",
                        {"order_id": "O1", "account_id": "A", "charge_date": "2026-10-05", "charge_type": "installation",
                         "description": "Campus build-out", "amount": "1250000.00"}),
        "equipment": table("equipment",
                           {"serial_number": "SN-1", "account_id": "A", "model": "Core switch", "ownership": "sale",
                            "price": "999999999999.99", "valid_from": "2026-10-05"}),
    })  # fmt: skip
    assert lines.select("section", "code", "amount").rows() == [
        ("recurring", "P", D("30.00")),
        ("one_time", "O1", D("1250000.00")),
        ("one_time", "SN-1", D("999999999999.99")),
    ]
