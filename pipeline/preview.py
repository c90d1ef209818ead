"""First-page previews of invoice PDFs (PNG, rendered by PDFium), for review in the Dagster UI and in tests.

Rule applied here: the preview is a picture of the PDF actually written (never of the HTML), so what is
reviewed is what the customer gets; it is written aside and moved into place."""

from __future__ import annotations

import io
from pathlib import Path

from pipeline.durable import write_atomically

PREVIEW_SCALE = 1.0  # 72 dpi: a Letter page is 612 × 792 pixels, small enough for asset metadata


def first_page_png(pdf_path: Path, scale: float = PREVIEW_SCALE) -> bytes:
    """PNG bytes of page 1 of ``pdf_path``."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(pdf_path))
    try:
        page = pdf[0]
        image = page.render(scale=scale).to_pil()
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        page.close()
    finally:
        pdf.close()
    return buffer.getvalue()


def preview_path(documents_dir: Path, invoice_number: str) -> Path:
    """Where an invoice's first-page preview is kept: beside its PDF."""
    return Path(documents_dir) / f"{invoice_number}.page1.png"


def write_preview(documents_dir: Path, invoice_number: str, scale: float = PREVIEW_SCALE) -> Path:
    """Render page 1 of ``<documents_dir>/<invoice_number>.pdf`` to ``<invoice_number>.page1.png`` and return
    its path; a clear error when the invoice has no PDF."""
    pdf_path = Path(documents_dir) / f"{invoice_number}.pdf"
    if not pdf_path.is_file():
        raise FileNotFoundError(
            f"no PDF for invoice {invoice_number} in {documents_dir}: run the cycle first"
        )
    return write_atomically(preview_path(documents_dir, invoice_number), first_page_png(pdf_path, scale))
