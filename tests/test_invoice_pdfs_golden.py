"""Golden invoices of the sample cycle: the PDFs the bill run rendered (real WeasyPrint, read back with pypdf)
show the golden amounts, mask what must be masked, follow each account's itemisation level, carry the
e-invoice where asked, and page 1 of a bill is kept as a PNG test artifact."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from facturx import get_facturx_xml_from_pdf
from lxml import etree
from pypdf import PdfReader

from pipeline.einvoice import NS
from pipeline.home import SAMPLE_DIR
from pipeline.masking import MASK
from pipeline.preview import first_page_png
from pipeline.rating import rated_events

pytestmark = pytest.mark.slow
CYCLE = "2026-10"


@pytest.fixture(scope="module")
def bills(sample_cycle):
    """The sample cycle's PDFs read back once: account → (invoice number, pages' text)."""
    home, _ = sample_cycle
    invoices = pl.read_parquet(home.lake / "invoices" / f"cycle={CYCLE}" / "invoices.parquet")
    folder = home.documents / CYCLE
    texts = {}
    for invoice_number, account_id in invoices.select("invoice_number", "account_id").iter_rows():
        pages = PdfReader(folder / f"{invoice_number}.pdf").pages
        texts[account_id] = (invoice_number, [" ".join((p.extract_text() or "").split()) for p in pages])
    return home, folder, texts


def test_golden_amounts_on_the_summary_page(bills):
    _, _, texts = bills
    # ACC-0001 (Spanish): 33.63 = carrier charges 27.35 (19.99 + 4.99 + 3.54 recurring, 0.30 + 0.03 usage,
    #   0.50 recovery fee, −2.00 credit) + government taxes 3.52 (911 1.50 + excise 2.02) + USF 2.76
    _, pages = texts["ACC-0001"]
    for expected in (
        "Importe a pagar $33.63",
        "Saldo anterior $0.00",
        "Cargos mensuales recurrentes $28.52",
        "Cargos de cdrbill Telecom (no son impuestos) $0.50",
        "Ajustes y créditos -$2.00",
        "Subtotal de cargos de cdrbill Telecom $27.35",
        "Impuestos gubernamentales $3.52",
        "Cargos regulatorios exigidos por el gobierno $2.76",
        "Importe total a pagar antes del 22 de noviembre de 2026 $33.63",
        "1-800-555-0100",
        "Cómo disputar un cargo",
    ):
        assert expected in pages[0], expected
    # ACC-0002: 77.60 = carrier 64.15 (63.99 + 1.11 − 2.45 + 1.50) + taxes 5.62 (1.50 + 3.67 + 0.04 + 0.41)
    #   + regulatory 7.83 (USF 6.45 + 1.38)
    _, pages = texts["ACC-0002"]
    for expected in (
        "Subtotal of cdrbill Telecom charges $64.15",
        "Government taxes $5.62",
        "Government-mandated regulatory fees $7.83",
        "Total amount due by November 22, 2026 $77.60",
    ):
        assert expected in pages[0], expected
    # ACC-0003: 71.16 = carrier 64.84 + TX sales 4.15 + USF 0.04 + TX USF 2.13
    _, pages = texts["ACC-0003"]
    assert "Government taxes $4.15" in pages[0] and "Government-mandated regulatory fees $2.17" in pages[0]
    assert "Total amount due by November 22, 2026 $71.16" in pages[0]


def test_masking_and_no_tax_id_in_any_pdf(bills):
    _, _, texts = bills
    accounts = pl.read_csv(SAMPLE_DIR / "reference" / "accounts.csv", infer_schema=False)
    tax_ids = accounts["tax_id"].drop_nulls().to_list()
    assert len(texts) == 49 and len(tax_ids) >= 40
    for account_id, (_, pages) in texts.items():
        text = " ".join(pages)
        assert not [t for t in tax_ids if t in text or t.replace("-", "") in text], account_id
        assert account_id in text  # its own bill shows its own account number …
        others = [a for a in accounts["account_id"] if a != account_id and a in text]
        assert others == [], account_id  # … and no other account's
    # ACC-0002 asks for called numbers masked to the last four digits
    detail = " ".join(texts["ACC-0002"][1])
    assert f"+{MASK * 7}0999 United States & Canada 3:20 (204)" in detail and "+12125550999" not in detail
    assert "+12125550199 United States & Canada 1:23 (84)" in " ".join(texts["ACC-0001"][1])  # not masked


def test_itemisation_levels_and_page_counts(bills):
    home, folder, texts = bills
    page_counts = {account: len(pages) for account, (_, pages) in texts.items()}
    assert set(page_counts.values()) <= {1, 2}  # the sample's bills are one or two pages
    assert page_counts["ACC-0001"] == page_counts["ACC-0002"] == 2
    # ACC-0003: summary bill, its 2 calls not printed
    text = " ".join(texts["ACC-0003"][1])
    assert "This is a summary bill: the 2 itemized usage records" in text and "Date and time" not in text
    # ACC-0004: its 18 calls in the CSV beside the PDF
    invoice_number, pages = texts["ACC-0004"]
    name = f"{invoice_number}-usage.csv"
    assert f"The 18 itemized usage records of this period are in the attached file {name}" in " ".join(pages)
    rows = list(csv.DictReader((folder / name).open(encoding="utf-8")))
    rated = rated_events(home.lake, CYCLE).collect()
    mine = rated.filter(pl.col("account_id") == "ACC-0004")
    assert len(rows) == mine.height == 18
    assert sum(Decimal(r["charge"]) for r in rows) == sum(mine["charge_amount"].to_list())
    assert sorted(p.name for p in folder.glob("*-usage.csv")) == [name]


def test_business_einvoice_in_the_sample(bills):
    _, folder, texts = bills
    invoice_number, _ = texts["ACC-0002"]
    _, xml = get_facturx_xml_from_pdf((folder / f"{invoice_number}.pdf").read_bytes(), check_xsd=True)
    root = etree.fromstring(xml)
    total = root.xpath("string(//ram:GrandTotalAmount)", namespaces=NS)
    lines = [Decimal(x) for x in root.xpath("//ram:LineTotalAmount/text()", namespaces=NS)]
    # 16 invoice lines: 10 carrier lines (49.00 + 5.00 + 9.99 + 0.04 + 0.15 + 0.90 + 0.02 − 2.45 + 0.50 + 1.00
    #   = 64.15) + 6 tax lines (13.45) = 77.60
    assert total == "77.60" and lines[-1] == Decimal("64.15") and sum(lines[:-1]) == Decimal("64.15")
    einvoices = [
        a for a, (n, _) in texts.items() if "factur-x.xml" in PdfReader(folder / f"{n}.pdf").attachments
    ]
    assert einvoices == ["ACC-0002"]


def test_first_page_png_artifact_and_preview_in_metadata(bills, sample_cycle, tmp_path_factory, monkeypatch):
    home, folder, texts = bills
    _, result = sample_cycle
    invoice_number, _ = texts["ACC-0001"]
    artifacts = tmp_path_factory.getbasetemp() / "artifacts"
    artifacts.mkdir(exist_ok=True)
    png = artifacts / f"{invoice_number}.page1.png"
    png.write_bytes(first_page_png(folder / f"{invoice_number}.pdf"))
    print(f"\npage 1 of {invoice_number} (ACC-0001): {png}")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (612, 792)  # US Letter at 72 dpi

    metadata = result.asset_materializations_for_node("invoice_documents")[0].metadata
    assert "data:image/png;base64," in metadata["preview"].value
    assert Path(metadata["preview_png"].value).is_file()
    assert metadata["einvoices"].value == 1 and metadata["csv_attachments"].value == 1
    assert metadata["summary_only"].value == 1

    from assets.cli import main

    monkeypatch.setenv("CDRBILL_HOME", str(home.root))
    assert (
        main(["--home", str(home.root), "preview", "--cycle", CYCLE, "--invoice", texts["ACC-0002"][0]]) == 0
    )
    assert (folder / f"{texts['ACC-0002'][0]}.page1.png").is_file()
    assert main(["--home", str(home.root), "preview", "--cycle", CYCLE, "--invoice", "INV-99999999"]) == 2
