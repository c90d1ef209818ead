"""The whole sample cycle through Dagster: exact invoices worked out by hand, record accounting, the
published warehouse, and a second run that changes nothing and sends nothing twice."""

import mailbox
from collections import Counter
from decimal import Decimal

import duckdb
import polars as pl
import pytest

from pipeline.summary import cycle_summary
from tests.conftest import SAMPLE_CYCLE, materialize_cycle, stage_sample

pytestmark = pytest.mark.slow


def warehouse(home) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(home.warehouse_db), read_only=True)


def invoice_lines(home, account_id: str) -> list[tuple[str, Decimal]]:
    with warehouse(home) as con:
        return con.execute(
            "select description, amount from invoice_lines where account_id = ? order by line_no",
            [account_id],
        ).fetchall()


def invoice_total(home, account_id: str) -> Decimal:
    with warehouse(home) as con:
        return con.execute("select total_amount from invoices where account_id = ?", [account_id]).fetchall()[
            0
        ][0]


def test_the_run_succeeds_and_every_check_passes(sample_cycle):
    _, result = sample_cycle
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert {c.check_name for c in checks} == {
        "mediation_accounts_for_every_record",
        "every_record_accounted_for",
        "invoice_totals_equal_their_lines",
        "cycle_revenue_reconciles",
        "one_invoice_per_billable_account",
        "no_negative_total_without_credit_reason",
    }
    assert all(c.passed for c in checks)


def test_residential_account_with_international_calls(sample_cycle):
    home, _ = sample_cycle
    # ACC-0001, Residential Basic via agent AG-01 in IL → price book PB-RES-STD → rate card RC-STD.
    # G1 83 s to +1 212 (prefix "1", 6/6, 0.02/min): 84 s × 0.02 / 60 = 0.0280
    #    (G1 also arrives in the second switch-chi file: a duplicate, billed once)
    # G2 10 s to +44 20 (prefix "44", 30/6, 0.09/min, connect 0.05): 30 s → 0.0450 + 0.0500 = 0.0950
    # G3 31 s to +44 7700 (prefix "447" beats "44", 30/6, 0.25/min, connect 0.05): 36 s → 0.1500 + 0.05 = 0.2000
    # G4 not answered: discarded.
    # usage lines by jurisdiction (rounded half_up per line): international G2 + G3 = 0.2950 → 0.30;
    #   interstate G1 (IL → NY) 0.0280 → 0.03
    # plan: 19.99 (whole month, in arrears); tenure 20 months < 24: no loyalty discount
    # Voicemail (billed in advance) from Oct 10: November in advance 4.99, and October's 22 days caught up:
    #   4.99 × 22 / 31 = 3.5412… → half_up → 3.54
    # IL 911 surcharge: 1 line × 1.50 = 1.50
    # IL excise 7% of (19.99 + 4.99 + 3.54 + 0.30 + 0.03 = 28.85) = 2.0195 → half_up → 2.02
    # federal USF 36.6% of 37.1% of the plan and the interstate/international usage (voicemail is a feature,
    #   not in its base): (19.99 + 0.30 + 0.03 = 20.32) × 0.371 × 0.366 = 2.7591… → 2.76
    # cost recovery fee (carrier's, not a tax): 1 line × 0.50
    # adjustment ADJ-0001 (adjustments.csv, effective Oct 20): goodwill credit −2.00, not taxed
    # total: 19.99 + 4.99 + 3.54 + 0.30 + 0.03 + 0.50 + 1.50 + 2.02 + 2.76 − 2.00 = 33.63
    assert invoice_lines(home, "ACC-0001") == [
        ("Residential Basic — Oct 1–Oct 31", Decimal("19.99")),
        ("Voicemail — Nov 1–Nov 30", Decimal("4.99")),
        ("Voicemail — days not yet billed Oct 10–Oct 31 (22 of 31 days)", Decimal("3.54")),
        ("Calls (international) from +1 312-555-0100 (2 calls, 1 min 6 s billed)", Decimal("0.30")),
        ("Calls (interstate) from +1 312-555-0100 (1 call, 1 min 24 s billed)", Decimal("0.03")),
        ("Regulatory Cost Recovery Fee (carrier charge, not a tax) × 1 line (IL lines)", Decimal("0.50")),
        ("Illinois 911 Surcharge × 1 line", Decimal("1.50")),
        ("Illinois Telecommunications Excise Tax 7%", Decimal("2.02")),
        ("Federal Universal Service Charge 36.6% of 37.1% taxable (IL lines)", Decimal("2.76")),
        ("Goodwill credit: service outage on Oct 8 (approved by j.rivera)", Decimal("-2.00")),
    ]
    assert invoice_total(home, "ACC-0001") == Decimal("33.63")


def test_business_account_with_lines_in_two_states(sample_cycle):
    home, _ = sample_cycle
    # ACC-0002, Business Pro via AG-02, account service state IL; numbers in IL and NY.
    # +1 312-555-0200 (IL → PB-BIZ → RC-BIZ):
    #   G5 125 s to +1 876 (Jamaica: "1876" beats "1"; 60/60, 0.30/min): 180 s → 0.9000 → international 0.90
    #   G6 59 s to +1 415 ("1", 60/60, 0.015/min): 60 s → 0.0150 → interstate (IL → CA) 0.02 (half_up)
    # +1 212-555-0201 (NY → PB-BIZ-NY, plan+state beats plan → RC-BIZ-NY):
    #   G7 200 s ("1", 6/6, 0.012/min): 204 s × 0.012 / 60 = 0.0408 → line 0.04
    # +1 212-555-0202 (NY, from the EMI DUF; its resend is a duplicate file, never loaded):
    #   G8 elapsed 12 min 34.5 s → 755 s (a started second counts) → 6/6 → 756 s × 0.012 / 60 = 0.1512 → 0.15
    # plan 49.00 and the router lease 5.00 (S/N RT-2024-000117) are sourced to the account's state IL; the
    #   additional line 9.99 belongs to +1 212-555-0202 and is sourced to NY.
    # loyalty 5% on the plan (tenure 29 months ≥ 24): 49.00 × 5% = 2.45 → −2.45 (IL, before taxes)
    # IL: 911 surcharge 1 line 1.50; excise 7% of (49.00 + 5.00 + 0.90 + 0.02 − 2.45 = 52.47) = 3.6729 → 3.67;
    #     federal USF on the plan net of its discount and the interstate/international usage
    #     (46.55 + 0.90 + 0.02 = 47.47) × 0.371 × 0.366 = 6.4457… → 6.45; recovery fee 0.50
    # NY (G7, G8 interstate): base 9.99 + 0.04 + 0.15 = 10.18; MCTD 0.375% = 0.038175 → rounds up → 0.04;
    #     sales 4% = 0.4072 → 0.41; federal USF on the line and its interstate usage
    #     10.18 × 0.371 × 0.366 = 1.3823… → 1.38; recovery fee 2 lines × 0.50 = 1.00
    # total: 49.00 + 5.00 + 9.99 + 0.04 + 0.15 + 0.90 + 0.02 − 2.45 + 0.50 + 1.00 + 1.50 + 3.67 + 6.45 + 0.04
    #        + 0.41 + 1.38 = 77.60
    amounts = [amount for _, amount in invoice_lines(home, "ACC-0002")]
    # (the carrier's recovery fees come before the taxes, with the carrier's charges: IL 0.50 then NY 1.00)
    assert amounts == [Decimal(a) for a in ("49.00", "5.00", "9.99", "0.04", "0.15", "0.90", "0.02", "-2.45", "0.50",
                                            "1.00", "1.50", "3.67", "6.45", "0.04", "0.41", "1.38")]  # fmt: skip
    assert invoice_total(home, "ACC-0002") == Decimal("77.60")


def test_mid_cycle_activation_is_prorated(sample_cycle):
    home, _ = sample_cycle
    # ACC-0003, Residential Basic via AG-02 in TX → agent+plan+state price book PB-AG02-TX → RC-TX-AG02.
    # activated 2026-10-16: 16 of 31 days → 19.99 × 16 / 31 = 10.3174… → half_up → 10.32
    # G9 10 s ("1", 30/6, 0.01/min): 30 s → 0.0050, local (Dallas → Dallas) → line 0.01 (half_up);
    # G10 61 s: 30 + 36 = 66 s → 0.0110 (half_even, exact), intrastate → line 0.01
    # G11 billsec "abc" → suspense BAD_DURATION; G12 before the number's service date → NOT_IN_SERVICE.
    # usage lines 0.01 + 0.01 = 0.02
    # one-time: the handset sold (S/N HS-2026-004521) 39.00 and the activation order 25.00
    # welcome offer $10 off the bill, taken from the plan first: −10.00
    # TX USF 3.3% of (10.32 + 39.00 + 25.00 + 0.02 − 10.00 = 64.34) = 2.12322 → up → 2.13
    # TX sales 6.25% of charges and the TX USF (tax on tax): 64.34 + 2.13 = 66.47 → 4.154375 → half_up → 4.15
    # federal USF on the plan net of its discount 0.32 × 0.371 × 0.366 = 0.0434… → 0.04; recovery fee 0.50
    # total: 10.32 + 39.00 + 25.00 + 0.02 − 10.00 + 4.15 + 0.04 + 2.13 + 0.50 = 71.16
    assert invoice_lines(home, "ACC-0003") == [
        ("Residential Basic — Oct 16–Oct 31 (16 of 31 days)", Decimal("10.32")),
        ("Equipment sale: Cordless handset CH-5, S/N HS-2026-004521", Decimal("39.00")),
        ("Activation fee", Decimal("25.00")),
        ("Calls (intrastate) from +1 214-555-0300 (1 call, 1 min 6 s billed)", Decimal("0.01")),
        ("Calls (local) from +1 214-555-0300 (1 call, 0 min 30 s billed)", Decimal("0.01")),
        ("Welcome offer: $10 off 3 months", Decimal("-10.00")),
        ("Regulatory Cost Recovery Fee (carrier charge, not a tax) × 1 line (TX lines)", Decimal("0.50")),
        ("Texas Sales Tax 6.25%", Decimal("4.15")),
        ("Federal Universal Service Charge 36.6% of 37.1% taxable (TX lines)", Decimal("0.04")),
        ("Texas Universal Service Fund 3.3%", Decimal("2.13")),
    ]
    assert invoice_total(home, "ACC-0003") == Decimal("71.16")
    with warehouse(home) as con:
        reasons = con.execute(
            "select reason from suspense where charged_number = '+12145550300' order by reason"
        ).fetchall()
    assert reasons == [("BAD_DURATION",), ("NOT_IN_SERVICE",)]


def test_one_invoice_per_active_account_with_gapless_numbers(sample_cycle):
    home, _ = sample_cycle
    with warehouse(home) as con:
        invoiced = {r[0] for r in con.execute("select account_id from invoices").fetchall()}
        numbers = [r[0] for r in con.execute("select sequence_no from invoices order by 1").fetchall()]
        active = {
            r[0]
            for r in con.execute(
                "select account_id from accounts where activated_on <= date '2026-10-31' "
                "and (deactivated_on is null or deactivated_on > date '2026-10-01')"
            ).fetchall()
        }
    assert invoiced == active and len(active) == 49  # ACC-0050 left in September
    assert numbers == list(range(1, 50))


def test_every_record_is_accounted_for(sample_cycle):
    home, result = sample_cycle
    summary = cycle_summary(home, SAMPLE_CYCLE)
    records = summary["records"]
    assert records["records_in"] == (
        records["rated"]
        + records["suspended"]
        + records["suspended_in_rating"]
        + records["duplicate"]
        + records["discarded"]
    )
    # the sample's injected faults, by outcome
    assert summary["files"] == {"loaded": 4, "duplicate_file": 1}
    assert records["duplicate"] == 7  # G1 + 6 calls exported in both switch-chi files
    with warehouse(home) as con:
        reasons = dict(con.execute("select reason, count(*) from suspense group by all").fetchall())
    assert reasons == {
        "UNKNOWN_SUBSCRIBER": 3,
        "UNPARSEABLE": 1,  # the 12-column line
        "BAD_TIMESTAMP": 1,  # 2026-10-32 25:61:00
        "BAD_DURATION": 3,  # billsec "abc" twice, EMI elapsed "00A1234"
        "NOT_IN_SERVICE": 1,  # G12
    }
    # the same suspense, file by file, in the mediation's metadata on the asset's page
    [materialization] = result.asset_materializations_for_node("mediated_usage")
    header, _, *lines = materialization.metadata["per_file"].value.splitlines()
    columns = [c.strip() for c in header.strip("|").split("|")]
    cells = [(value.strip() for value in line.strip("|").split("|")) for line in lines]
    files = [dict(zip(columns, row, strict=True)) for row in cells]
    by_reason: Counter[str] = Counter()
    for file in files:
        file_reasons: Counter[str] = Counter()
        for item in filter(None, file["suspended_by_reason"].split(", ")):
            reason, count = item.split(" ")
            file_reasons[reason] = int(count)
        assert file_reasons.total() == int(file["suspended"])
        by_reason += file_reasons
        outcomes = ("normalised", "suspended", "duplicate", "discarded")
        assert sum(int(file[outcome]) for outcome in outcomes) == int(file["records_in"])
    assert by_reason == reasons


def test_documents_and_deliveries(sample_cycle):
    home, _ = sample_cycle
    pdfs = sorted((home.documents / SAMPLE_CYCLE).glob("*.pdf"))
    assert len(pdfs) == 49
    box = mailbox.Maildir(str(home.outbox), create=False)
    printed = sorted((home.print_dir / SAMPLE_CYCLE).glob("*.pdf"))
    with warehouse(home) as con:
        by_channel = dict(con.execute("select channel, count(*) from deliveries group by all").fetchall())
    assert len(box) == by_channel["email"]
    assert len(printed) == by_channel["print"]
    assert by_channel["email"] + by_channel["print"] == 49


def test_warehouse_is_queryable_read_only_and_masks_tax_ids(sample_cycle):
    home, _ = sample_cycle
    with warehouse(home) as con:
        rated = con.execute("select count(*), sum(charge_amount) from rated_usage").fetchall()[0]
        columns = {r[0] for r in con.execute("select column_name from information_schema.columns").fetchall()}
        with pytest.raises(duckdb.Error):
            con.execute("delete from invoices")
    assert rated[0] > 800 and isinstance(rated[1], Decimal)
    assert "tax_id" not in columns


def test_tax_lines_balances_and_agent_statements_are_published(sample_cycle):
    home, _ = sample_cycle
    with warehouse(home) as con:
        taxes = con.execute("select sum(amount) from invoice_lines where section = 'taxes'").fetchall()[0][0]
        filed = dict(con.execute("select authority, sum(amount) from tax_lines group by all").fetchall())
        balances = con.execute("select count(*), sum(amount_due) = sum(current_charges) from invoice_balances").fetchall()
        commissions = dict(
            con.execute("select account_id, commission from commission_lines where account_id <= 'ACC-0003'").fetchall()
        )
        agents = con.execute("select count(*), sum(commission) from agent_statements").fetchall()[0]
        total = con.execute("select sum(commission) from commission_lines").fetchall()[0][0]
    assert sum(filed.values()) == taxes and "FCC (Universal Service Fund)" in filed
    assert balances == [(49, True)]  # the first cycle: nothing brought forward
    # ACC-0001 (AG-01, 8% of billed revenue): 8% × (19.99 + 4.99 + 3.54 + 0.32 = 28.84) = 2.3072 → 2.31
    # ACC-0002 (AG-02, BIZ-PRO: 12% of collected revenue, the more specific plan): nothing collected yet → 0.00
    # ACC-0003 (AG-02, 10% billed): 10% × (10.32 + 39.00 + 25.00 + 0.02 − 10.00 = 64.34) = 6.434 → 6.43
    assert commissions == {"ACC-0001": Decimal("2.31"), "ACC-0002": Decimal("0.00"), "ACC-0003": Decimal("6.43")}
    assert agents == (3, total)


def test_running_the_cycle_again_changes_nothing_and_sends_nothing_twice(tmp_path):
    home = stage_sample(tmp_path / "home")
    first = materialize_cycle(home)
    assert first.success
    before = pl.read_parquet(home.lake / "invoices" / f"cycle={SAMPLE_CYCLE}" / "invoice_lines.parquet")
    messages_before = len(mailbox.Maildir(str(home.outbox), create=False))
    # the same files land again (a resend of everything) and the cycle runs again
    stage_sample(home.root)
    second = materialize_cycle(home)
    assert second.success
    after = pl.read_parquet(home.lake / "invoices" / f"cycle={SAMPLE_CYCLE}" / "invoice_lines.parquet")
    assert after.equals(before)
    assert len(mailbox.Maildir(str(home.outbox), create=False)) == messages_before
    summary = cycle_summary(home, SAMPLE_CYCLE)
    assert summary["files"] == {"loaded": 4, "duplicate_file": 6}  # all five re-landed files refused
    metadata = second.asset_materializations_for_node("invoices")[0].metadata
    assert metadata["newly_finalized"].value == 0
