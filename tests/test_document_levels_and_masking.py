"""Itemisation levels (full, summary, CSV attachment, the row cap), masking of personal data, and the itemised
detail of SMS and data sessions with allowance units — checked on real PDFs read back with pypdf."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_documents import TEMPLATES, make_doc, pdf_text

from pipeline.documents import (
    BalanceBlock,
    InvoiceLine,
    UsageItem,
    render_invoice_html,
)
from pipeline.itemisation import write_itemisation_csvs
from pipeline.masking import (
    MASK,
    contains_tax_id,
    mask_account_number,
    mask_called_number,
    redact_tax_ids,
)
from pipeline.rendering import render_invoice_pdfs
from pipeline.statements import itemisation_level


def test_itemisation_level_follows_the_preference_and_the_cap() -> None:
    assert itemisation_level(None, 12, 500) == "full"
    assert itemisation_level("full", 500, 500) == "full"
    assert itemisation_level("full", 501, 500) == "csv"  # the cap: no accidental 300-page PDF
    assert itemisation_level(None, 10_000, 500) == "csv"
    assert itemisation_level("summary", 10_000, 500) == "summary"  # a summary bill stays a summary
    assert itemisation_level("csv", 3, 500) == "csv"


def test_summary_and_csv_levels_print_no_calls_and_the_csv_sits_beside_the_pdf(tmp_path: Path) -> None:
    full = make_doc("INV-00000031", n_usage=60)
    summary = replace(make_doc("INV-00000032", n_usage=60), itemisation="summary")
    as_csv = replace(make_doc("INV-00000033", n_usage=60), itemisation="csv", mask_called_numbers=True)
    docs = [full, summary, as_csv]
    rendered = write_itemisation_csvs(
        docs, render_invoice_pdfs(docs, tmp_path, TEMPLATES, workers=1), tmp_path
    )

    assert [r.pages for r in rendered] == [2, 1, 1]  # the 60 calls need a second page only when printed
    assert rendered[0].itemisation_csv is None and rendered[1].itemisation_csv is None
    summary_text = " ".join(pdf_text(rendered[1].path))
    assert "+442079460000" not in summary_text and "Date and time" not in summary_text
    assert (
        "This is a summary bill: the 60 itemized usage records of this period are not printed."
        in summary_text
    )
    csv_text = " ".join(pdf_text(rendered[2].path))
    assert "The 60 itemized usage records of this period are in the attached file INV-00000033-usage.csv" in (
        csv_text
    )
    assert "+442079460000" not in csv_text

    path = rendered[2].itemisation_csv
    assert path == tmp_path / "INV-00000033-usage.csv" and path.parent == rendered[2].path.parent
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert len(rows) == 60
    # the CSV carries the exact rated charges: Σ 0.012345 × (i + 1) for i < 60 = 0.012345 × 1830 = 22.591350
    assert sum(Decimal(r["charge"]) for r in rows) == Decimal("22.591350")
    assert {r["called_number"] for r in rows} == {
        f"+{MASK * 8}0000",
        f"+{MASK * 7}9876",
    }  # masked per account
    assert rows[0]["service_number"] == "+13125550100" and rows[0]["used_units"] == "37"

    before = path.stat().st_mtime_ns
    again = write_itemisation_csvs(docs, rendered, tmp_path)
    assert again == rendered and path.stat().st_mtime_ns == before  # unchanged CSV: not rewritten


def test_called_numbers_masked_per_account_and_no_tax_id_on_the_bill(tmp_path: Path) -> None:
    doc = replace(
        make_doc("INV-00000041", name="Pat Doe 123-45-6789"),
        mask_called_numbers=True,
        address_lines=("EIN 12-3456789, 5 Elm St", "Chicago, IL 60601"),
    )
    html = render_invoice_html(doc, TEMPLATES)
    # the document's content; the head carries the stylesheet's SHA-256, whose hex can hold 9 digits in a row
    assert not contains_tax_id(html.split("<body", 1)[1])
    [rendered] = render_invoice_pdfs([doc], tmp_path, TEMPLATES, workers=1)
    text = " ".join(pdf_text(rendered.path))
    assert "123-45-6789" not in text and "12-3456789" not in text and "Pat Doe [redacted]" in text
    assert "+442079460000" not in text and "+13125559876" not in text
    assert f"+{MASK * 8}0000 United Kingdom - Mobile 0:37 (60) $0.02469" in text
    assert "ACC-1001" in text  # the customer's own bill shows its own account number in full


def test_masking_helpers() -> None:
    assert mask_account_number("ACC-0001") == f"{MASK * 4}0001"
    assert mask_account_number("0001") == MASK * 4
    assert mask_called_number("+13125559876") == f"+{MASK * 7}9876"
    assert redact_tax_ids(
        "SSN 900-00-0001, EIN 00-0000002, id 900000001, call +13125559876 on 2026-10-01"
    ) == ("SSN [redacted], EIN [redacted], id [redacted], call +13125559876 on 2026-10-01")
    assert not contains_tax_id("INV-00000001 S/N RT-2024-000117 60608 1-800-555-0100")


@given(st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True))
def test_a_masked_called_number_shows_only_its_last_four_digits(number: str) -> None:
    masked = mask_called_number(number)
    assert len(masked) == len(number) and masked.startswith("+")
    assert masked[-4:] == number[-4:]
    assert [ch for ch in masked[:-4] if ch.isdigit()] == []


def test_sms_and_data_sessions_are_itemised_with_allowance_units(tmp_path: Path) -> None:
    base = make_doc("INV-00000051", n_usage=1)
    items = (
        UsageItem("+13125550100", datetime(2026, 10, 2, 9, 0), "+13125559876", "US Domestic", 0, 0,
                  Decimal("0"), service="sms", units=1, billed_units=1, included_units=1),
        UsageItem("+13125550100", datetime(2026, 10, 3, 9, 0), "+13125559876", "US Domestic", 0, 0,
                  Decimal("0.05"), service="sms", units=2, billed_units=2),
        UsageItem("+13125550100", datetime(2026, 10, 4, 9, 0), "", "Data", 0, 0, Decimal("0.100000"),
                  service="data", units=1_234_567, billed_units=2_000_000, included_units=1_000_000),
    )  # fmt: skip
    extra = InvoiceLine("usage", "+13125550100", "Messages and data", None, None, Decimal("0.15"))
    doc = replace(
        base,
        usage_items=base.usage_items + items,
        lines=base.lines + (extra,),
        total=base.total + Decimal("0.15"),
        balance=replace(
            base.balance or BalanceBlock(*(Decimal(0),) * 6),
            current_charges=base.total + Decimal("0.15"),
            amount_due=base.total + Decimal("30.15"),
        ),
    )
    [rendered] = render_invoice_pdfs([doc], tmp_path, TEMPLATES, workers=1)
    text = " ".join(pdf_text(rendered.path))
    assert "Itemized usage for +13125550100 — Text messages (2 messages; 1 included in your plan)" in text
    assert "+13125559876 US Domestic 1 (1) 1 $0.00" in text
    assert "+13125559876 US Domestic 2 (2) $0.05" in text
    assert "Itemized usage for +13125550100 — Data sessions (1 session; 1 included in your plan)" in text
    assert "Data 1.23 MB (2.00 MB) 1.00 MB $0.10" in text  # used (billed): bytes as decimal MB, 2 places
    # the "In plan" column only in the tables with included units: SMS and data, not the voice table
    assert text.count("In plan") == 2
    assert "Date and time Number called Destination Duration (billed sec.) Charge" in text


def test_the_balance_block_must_add_up() -> None:
    doc = make_doc()
    assert doc.balance is not None
    with pytest.raises(ValueError, match="amount due"):
        render_invoice_html(replace(doc, balance=replace(doc.balance, amount_due=doc.total)), TEMPLATES)
    with pytest.raises(ValueError, match="current charges"):
        render_invoice_html(
            replace(doc, balance=replace(doc.balance, current_charges=Decimal("1.00"))), TEMPLATES
        )
    with pytest.raises(ValueError, match="itemisation"):
        render_invoice_html(replace(doc, itemisation="everything"), TEMPLATES)


def test_tier_usage_is_shown(tmp_path: Path) -> None:
    from pipeline.documents import TierUsage

    tier = TierUsage("TIER-VOICE", "voice", "graduated", 7200, "0-3600: 0.010; 3600+: 0.008", Decimal("1.44"))
    html = render_invoice_html(replace(make_doc("INV-00000071"), tier_usage=(tier,)), TEMPLATES)
    assert "Usage priced by tier" in html and "TIER-VOICE (graduated)" in html
    assert "7,200" in html and "0-3600: 0.010; 3600+: 0.008" in html and "$1.44" in html
