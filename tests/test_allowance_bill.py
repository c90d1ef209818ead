"""A golden bill with an allowance crossing (issue 5): the real rating engine consumes a plan's included minutes
in call order and splits the crossing call; the bill run shows the included minutes at 0.00 and charges the
overage. The allowance is a test-local tweak of test_rating's reference, not a change of the sample month."""

from datetime import datetime
from decimal import Decimal

import polars as pl
import test_rating
from billrun_fixtures import account, amounts, bill, plan, table, tax
from billrun_fixtures import rated as rated_events

D = Decimal
NUMBER = "+13125550100"
# test_rating's plan P1 prices calls on RC-A: US & Canada 0.02 per minute, 6 s first and next increments,
# half_up to 4 decimals; P1 gets 600 s (10 min) of domestic calls included
ALLOWANCE = ("AL-P1-VOICE", "P1", "voice", "domestic", 600)


def test_an_allowance_crossing_bills_the_included_minutes_at_zero_and_the_overage(monkeypatch):
    monkeypatch.setattr(test_rating, "ALLOWANCES", [ALLOWANCE])
    rated = test_rating.rate(
        ("ACC-1", "IL", "+12125550199", 1500, datetime(2026, 10, 3, 12)),  # 3rd: wholly charged
        ("ACC-1", "IL", "+12125550199", 300, datetime(2026, 10, 1, 12)),  # 1st: wholly included
        ("ACC-1", "IL", "+12125550199", 420, datetime(2026, 10, 2, 12)),  # 2nd: crosses the allowance
        charged=NUMBER,
    )
    # consumed in call order: 300 s included (0 left 300), then 420 s = 300 included + 120 charged, then 1500 s
    # charged: 120 × 0.02 / 60 = 0.0400; 1500 × 0.02 / 60 = 0.5000
    assert rated.select("line_no", "included_units", "charged_units", "charge_amount").rows() == [
        (1, 0, 1500, D("0.5")), (2, 300, 0, D("0")), (3, 300, 120, D("0.04")),
    ]  # fmt: skip
    assert rated["allowance_id"].to_list() == ["AL-P1-VOICE"] * 3
    lines = bill(
        {"accounts": table("accounts", account("ACC-1", plan="P1")), "plans": table("plans", plan("P1", "25.00")),
         "taxes": table("taxes", tax("IL-T", "IL", "7.00"))},  # fmt: skip
        rated.filter(pl.col("rating_reason").is_null()),
    )
    # usage: 0.00 + 0.04 + 0.50 = 0.54 (half_up to cents: 0.54); tax 7% × (25.00 + 0.54 = 25.54) = 1.7878 → 1.79
    # total 25.00 + 0.54 + 1.79 = 27.33
    assert amounts(lines) == [("recurring", "P1", D("25.00")), ("usage", "interstate", D("0.54")),
                              ("taxes", "IL-T", D("1.79"))]  # fmt: skip
    assert sum(lines["amount"]) == D("27.33")
    # 300 + 420 + 1500 = 2220 s = 37 min billed; 300 + 300 = 600 s = 10 min included; 120 + 1500 = 1620 s =
    # 27 min charged
    assert lines.filter(pl.col("section") == "usage")["description"].to_list() == [
        "Calls (interstate) from +1 312-555-0100 (3 calls, 37 min 0 s billed; 10 min 0 s included in plan at 0.00, "
        "27 min 0 s charged)"
    ]


def test_other_services_show_their_included_units():
    events = rated_events(("A", NUMBER, "IL", None, "0", None, "data"), ("A", NUMBER, "IL", None, "0.0143", None,
                                                                        "data")).with_columns(  # fmt: skip
        included_units=pl.Series([2_097_152, 1_048_576]), charged_units=pl.Series([0, 1_500_160])
    )
    lines = bill({"accounts": table("accounts", account("A"))}, events)
    # 2,097,152 + 1,048,576 = 3,145,728 bytes included; 1,500,160 charged at 0.0143 → 0.01
    assert lines.filter(pl.col("section") == "usage").select("description", "amount").rows() == [
        ("Data sessions from +1 312-555-0100 (3145728 bytes included in plan at 0.00, 1500160 bytes charged)",
         D("0.01"))  # fmt: skip
    ]
