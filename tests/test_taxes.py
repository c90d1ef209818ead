"""Taxes and fees on hand-checked bills: tax on tax, per-line fees that are not prorated, percent taxable and
federal charges sourced to each state of a multi-state business account, exemptions, effective dates, and the
reference checks that keep the tax table computable."""

import shutil
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from billrun_fixtures import account, amounts, bill, plan, rated, table, tax

from pipeline.home import SAMPLE_DIR
from pipeline.reference import ReferenceDataError, load_reference
from pipeline.taxes import TaxOrderError, tax_levels

D = Decimal


def test_tax_on_tax_rounds_each_tax_by_its_own_rule():
    lines = bill({
        "accounts": table("accounts", account("A", "TX")),
        "plans": table("plans", plan("P", "31.00")),
        "taxes": table("taxes", tax("TX-SALES", "TX", "6.25", taxes_on="TX-USF"),
                       tax("TX-USF", "TX", "3.30", kind="regulatory_fee", rounding_method="up")),
    })  # fmt: skip
    # TX-USF 3.3% × 31.00 = 1.023 → up 1.03; TX-SALES 6.25% × (31.00 + 1.03 = 32.03) = 2.001875 → half_up 2.00
    assert amounts(lines) == [("recurring", "P", D("31.00")), ("taxes", "TX-SALES", D("2.00")),
                              ("taxes", "TX-USF", D("1.03"))]  # fmt: skip
    assert lines.filter(pl.col("code") == "TX-SALES")["taxable_base"].to_list() == [D("32.03")]


def number(n: str, account_id: str, state: str, start: str = "2025-01-01", end: str = "") -> dict[str, str]:
    return {"service_number": n, "account_id": account_id, "service_state": state, "valid_from": start,
            "valid_to": end}  # fmt: skip


def test_a_multi_line_business_account_in_two_states():
    lines = bill({
        "accounts": table("accounts", account("B", "IL", plan="BIZ", account_type="business")),
        "plans": table("plans", plan("BIZ", "49.00")),
        "service_numbers": table("service_numbers", number("+13125550200", "B", "IL"),
                                 number("+12125550201", "B", "NY"), number("+12125550202", "B", "NY", "2026-10-29")),
        "taxes": table("taxes",
                       tax("FED-USF", "", "36.6", level="federal", kind="regulatory_fee",
                           base="voice_interstate|voice_international"),
                       tax("IL-T", "IL", "7.00"), tax("NY-S", "NY", "4.00"),
                       tax("NY-MCTD", "NY", "0.375", rounding_method="up"),
                       tax("NY-911", "NY", method="per_line", per_line_amount="1.20")),
    }, rated(("B", "+13125550200", "IL", 600, "2.00", "interstate"), ("B", "+13125550200", "IL", 60, "1.00", "local"),
             ("B", "+12125550201", "NY", 900, "4.00", "interstate")))  # fmt: skip
    # plan 49.00 sourced to the account's state IL; usage by each number's state.
    # IL: FED-USF 36.6% × interstate 2.00 = 0.732 → 0.73; IL-T 7% × (49.00 + 2.00 + 1.00 = 52.00) = 3.64
    # NY: FED-USF 36.6% × 4.00 = 1.464 → 1.46; NY-S 4% × 4.00 = 0.16; NY-MCTD 0.375% × 4.00 = 0.015 → up 0.02;
    #     NY-911 1.20 × 2 lines = 2.40 (+12125550202 came on Oct 29: a month or part thereof, not prorated)
    # total 49.00 + 2.00 + 1.00 + 4.00 + 0.73 + 3.64 + 1.46 + 0.16 + 0.02 + 2.40 = 64.41
    assert lines.select("section", "jurisdiction", "code", "amount").rows() == [
        ("recurring", "IL", "BIZ", D("49.00")),
        ("usage", "NY", "interstate", D("4.00")),
        ("usage", "IL", "interstate", D("2.00")),
        ("usage", "IL", "local", D("1.00")),
        ("taxes", "IL", "IL-T", D("3.64")),
        ("taxes", "IL", "FED-USF", D("0.73")),
        ("taxes", "NY", "NY-911", D("2.40")),
        ("taxes", "NY", "NY-MCTD", D("0.02")),
        ("taxes", "NY", "NY-S", D("0.16")),
        ("taxes", "NY", "FED-USF", D("1.46")),
    ]
    assert sum(lines["amount"]) == D("64.41")
    usf = lines.filter(pl.col("code") == "FED-USF")
    assert usf["description"].to_list() == ["FED-USF 36.6% (IL lines)", "FED-USF 36.6% (NY lines)"]
    assert usf["category"].to_list() == ["regulatory_fee"] * 2


def test_percent_taxable_applies_a_safe_harbor_share():
    lines = bill({"accounts": table("accounts", account("A")),
                  "taxes": table("taxes", tax("FED-USF", "", "36.6", level="federal", base="plan",
                                              percent_taxable="37.1", kind="regulatory_fee"))})  # fmt: skip
    # 30.00 × 37.1% × 36.6% = 4.07358 → 4.07
    assert amounts(lines)[-1] == ("taxes", "FED-USF", D("4.07"))
    assert lines["description"][-1] == "FED-USF 36.6% of 37.1% taxable (IL lines)"


def exemption(account_id: str, code: str, kind: str, certificate: str = "") -> dict[str, str]:
    return {"account_id": account_id, "tax_code": code, "exemption": kind, "certificate_id": certificate,
            "valid_from": "2026-01-01"}  # fmt: skip


def test_exempt_accounts_show_the_exemption_and_still_pay_recovery_fees():
    lines = bill({
        "accounts": table("accounts", account("EX"), account("LL"), account("ONE")),
        "service_numbers": table("service_numbers", number("+13125550001", "EX", "IL"),
                                 number("+13125550002", "LL", "IL"), number("+13125550003", "ONE", "IL")),
        "taxes": table("taxes", tax("IL-T", "IL", "7.00"),
                       tax("IL-USF", "IL", "2.00", kind="regulatory_fee", lifeline_exempt="yes"),
                       tax("RCRF", "", level="federal", kind="recovery_fee", method="per_line",
                           per_line_amount="0.99")),
        "tax_exemptions": table("tax_exemptions", exemption("EX", "*", "certificate", "EXC-2026-001"),
                                exemption("LL", "*", "lifeline"), exemption("ONE", "IL-USF", "certificate", "C-9")),
    })  # fmt: skip
    taxes = {a: [(s, c, amt) for s, c, amt in amounts(lines, a) if s != "recurring"] for a in ("EX", "LL", "ONE")}
    # EX: certificate for all taxes: zero lines that name it; the carrier's recovery fee is never exempt (0.99),
    # and it is shown with the carrier's charges, not among the taxes
    assert taxes["EX"] == [("carrier_fees", "RCRF", D("0.99")), ("taxes", "IL-T", D("0.00")),
                           ("taxes", "IL-USF", D("0.00"))]  # fmt: skip
    assert "IL-T 7% — exempt: certificate EXC-2026-001" in lines["description"].to_list()
    # LL: lifeline exempts only the taxes marked lifeline_exempt: IL-T 7% × 30.00 = 2.10 stays
    assert taxes["LL"] == [("carrier_fees", "RCRF", D("0.99")), ("taxes", "IL-T", D("2.10")),
                           ("taxes", "IL-USF", D("0.00"))]  # fmt: skip
    # ONE: a certificate for one tax only: IL-USF exempt, IL-T 2.10
    assert taxes["ONE"] == [("carrier_fees", "RCRF", D("0.99")), ("taxes", "IL-T", D("2.10")),
                            ("taxes", "IL-USF", D("0.00"))]  # fmt: skip


def test_the_rate_in_force_at_the_cycle_end_applies():
    lines = bill({"accounts": table("accounts", account("A")),
                  "taxes": table("taxes", tax("IL-T", "IL", "7.00", valid_to="2026-10-15"),
                                 tax("IL-T", "IL", "8.00", valid_from="2026-10-15"),
                                 tax("IL-OLD", "IL", "1.00", valid_to="2026-10-01"))})  # fmt: skip
    # only IL-T at 8% is in force on Oct 31: 30.00 × 8% = 2.40
    assert amounts(lines)[1:] == [("taxes", "IL-T", D("2.40"))]


def test_tax_levels_follow_taxes_on():
    taxes = table(
        "taxes", tax("A", "TX", "1"), tax("B", "TX", "1", taxes_on="A"), tax("C", "TX", "1", taxes_on="A|B")
    )
    assert dict(tax_levels(taxes).select("tax_code", "tax_level").rows()) == {"A": 0, "B": 1, "C": 2}
    with pytest.raises(TaxOrderError, match="cycle"):
        tax_levels(table("taxes", tax("A", "TX", "1", taxes_on="B"), tax("B", "TX", "1", taxes_on="A")))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (",100,TX-USF,", ",100,TX-NOPE,", "levied on unknown taxes"),
        ("percent,6.25,", "percent,,", "tax TX-SALES is incomplete. Fix: give rate_percent"),
        ("federal,,regulatory_fee", "federal,TX,regulatory_fee", "leave state empty for a federal tax"),
        ("plan|line|voice_interstate", "plan|minutes", "not a charge category"),
    ],
)
def test_bad_tax_rows_are_named(tmp_path: Path, old: str, new: str, message: str):
    folder = tmp_path / "reference"
    shutil.copytree(SAMPLE_DIR / "reference", folder)
    path = folder / "taxes.csv"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ReferenceDataError, match=message):
        load_reference(folder)
