"""Print batches: a cycle's paper documents (invoices, payment reminders) merged into one PDF for the print
shop, with a manifest CSV, presorted by ZIP code; each document printed once, ever (``print_batch_items``).

Billing rules applied here:

* a document goes to print when its delivery is by paper: an invoice recorded on the ``print`` channel of the
  delivery ledger, a reminder on the ``print`` channel of ``payment_reminders``, a credit note on the
  ``credit_note_print`` channel of the delivery ledger;
* a postal address must be complete and well formed to print (street, city, two-letter state, ZIP ``12345`` or
  ``12345-6789``); otherwise the document is rejected with its reason — never printed — and printed by a later
  batch once the address is fixed;
* in the batch, documents are sorted by ZIP (presort), then account and document; with ``print_duplex`` each
  document has an even page count (a blank page added) so no sheet carries two customers' pages;
* the manifest shows the account number masked (last four characters), the document number, its first page
  and page count in the batch, its postal address and the SHA-256 of the document's own PDF;
* the batch is deterministic: the same documents give the same bytes (no timestamps or ids in the merged PDF).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
from pypdf import PdfReader, PdfWriter

from pipeline.durable import write_atomically
from pipeline.faults import crash_point

ZIP_PATTERN = r"^[0-9]{5}(-[0-9]{4})?$"
STATE_PATTERN = r"^[A-Z]{2}$"
MANIFEST_COLUMNS = [
    "batch_id",
    "account",
    "document_id",
    "kind",
    "first_page",
    "pages",
    "name",
    "address_line1",
    "city",
    "state",
    "zip",
    "sha256",
]


@dataclass(frozen=True)
class PrintBatch:
    """One merged batch: its files, its manifest and the documents rejected for their address."""

    batch_id: str | None  # None: nothing new to print
    pdf_path: Path | None
    manifest: pl.DataFrame
    rejects: pl.DataFrame
    pages: int


def mask_account(account_id: pl.Expr) -> pl.Expr:
    """Account number masked for a document seen by others (rule: only the last four characters)."""
    return pl.lit("****") + account_id.str.slice(-4)


def address_problems(accounts: pl.DataFrame) -> pl.DataFrame:
    """Accounts whose postal address cannot be printed, with the reason (first failing rule): ``MISSING_STREET``,
    ``MISSING_CITY``, ``MISSING_STATE``, ``BAD_STATE``, ``MISSING_ZIP``, ``BAD_ZIP``."""

    def blank(column: str) -> pl.Expr:
        return pl.col(column).cast(pl.String).str.strip_chars().fill_null("") == ""

    reason = (
        pl.when(blank("billing_address_line1"))
        .then(pl.lit("MISSING_STREET"))
        .when(blank("billing_city"))
        .then(pl.lit("MISSING_CITY"))
        .when(blank("billing_state"))
        .then(pl.lit("MISSING_STATE"))
        .when(~pl.col("billing_state").cast(pl.String).str.contains(STATE_PATTERN))
        .then(pl.lit("BAD_STATE"))
        .when(blank("billing_zip"))
        .then(pl.lit("MISSING_ZIP"))
        .when(~pl.col("billing_zip").cast(pl.String).str.strip_chars().str.contains(ZIP_PATTERN))
        .then(pl.lit("BAD_ZIP"))
    )
    return (
        accounts.select("account_id", reason.alias("reason"))
        .filter(pl.col("reason").is_not_null())
        .sort("account_id")
    )


def unbatched_documents(state: duckdb.DuckDBPyConnection, cycle: str, documents_dir: Path) -> pl.DataFrame:
    """The cycle's paper documents not yet in any print batch: document_id, kind (invoice, reminder, credit note,
    or the notice mailed to an account switched to paper after bounces), account_id, pdf_path."""
    return state.sql(
        """
        with paper as (
            select invoice_number as document_id, 'invoice' as kind, account_id,
                   $folder || '/' || invoice_number || '.pdf' as pdf_path
            from delivery_ledger where cycle = $cycle and channel = 'print'
            union all
            select reminder_id, 'reminder', account_id, destination
            from payment_reminders where cycle = $cycle and channel = 'print'
            union all
            select invoice_number, 'credit_note', account_id, destination
            from delivery_ledger where cycle = $cycle and channel = 'credit_note_print' and status = 'sent'
            union all
            select 'NOTICE-' || account_id, 'notice', account_id, notice_file
            from delivery_preference_overrides where cycle = $cycle
        )
        select * from paper
        where document_id not in (select document_id from print_batch_items)
        order by document_id
        """,
        params={"cycle": cycle, "folder": str(documents_dir)},
    ).pl()


def merge_pdfs(paths: list[Path], duplex: bool) -> tuple[bytes, list[tuple[int, int, str]]]:
    """Merge PDFs in order into one deterministic PDF; per document (first page, pages, sha256 of its file).
    With ``duplex`` a document with an odd page count gets a blank page of its last page's size."""
    writer = PdfWriter()
    placed = []
    for path in paths:
        data = Path(path).read_bytes()
        reader = PdfReader(io.BytesIO(data))
        first = len(writer.pages) + 1
        for page in reader.pages:
            writer.add_page(page)
        if duplex and len(reader.pages) % 2:
            last = reader.pages[-1].mediabox
            writer.add_blank_page(width=last.width, height=last.height)
        placed.append((first, len(writer.pages) - first + 1, hashlib.sha256(data).hexdigest()))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue(), placed


def _next_batch_id(state: duckdb.DuckDBPyConnection, cycle: str) -> str:
    rows = state.execute(
        "select count(distinct batch_id) from print_batch_items where cycle = ?", [cycle]
    ).fetchall()
    return f"{cycle}-{int(rows[0][0]) + 1:02d}"


def build_print_batch(
    state: duckdb.DuckDBPyConnection,
    cycle: str,
    documents_dir: Path,
    batch_dir: Path,
    accounts: pl.DataFrame,
    duplex: bool,
    now: datetime | None = None,
) -> PrintBatch:
    """Merge the cycle's unbatched paper documents with a printable address into the next batch
    (``<cycle>-<nn>.pdf`` + ``-manifest.csv``), write ``rejects.csv`` (documents held for their address), and
    record the batch's documents — after its files are written, so a crash re-makes the same batch."""
    batch_dir.mkdir(parents=True, exist_ok=True)
    pending = unbatched_documents(state, cycle, documents_dir)
    problems = address_problems(accounts)
    rejects = (
        pending.join(problems, on="account_id", how="inner")
        .select("document_id", "kind", mask_account(pl.col("account_id")).alias("account"), "reason")
        .sort("document_id")
    )
    write_atomically(batch_dir / "rejects.csv", rejects.write_csv().encode())
    printable = (
        pending.join(problems, on="account_id", how="anti")
        .join(
            accounts.select(
                "account_id",
                pl.col("account_name").alias("name"),
                pl.col("billing_address_line1").alias("address_line1"),
                pl.col("billing_city").alias("city"),
                pl.col("billing_state").alias("state"),
                pl.col("billing_zip").str.strip_chars().alias("zip"),
            ),
            on="account_id",
            how="left",
        )
        .sort("zip", "account_id", "document_id")
    )
    if printable.is_empty():
        return PrintBatch(
            None, None, pl.DataFrame(schema=dict.fromkeys(MANIFEST_COLUMNS, pl.String)), rejects, 0
        )
    missing = [p for p in printable["pdf_path"].to_list() if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"print batch of {cycle}: {len(missing)} PDFs missing, first {missing[0]}")
    batch_id = _next_batch_id(state, cycle)
    pdf, placed = merge_pdfs([Path(p) for p in printable["pdf_path"].to_list()], duplex)
    manifest = printable.with_columns(
        batch_id=pl.lit(batch_id),
        account=mask_account(pl.col("account_id")),
        first_page=pl.Series([p[0] for p in placed], dtype=pl.Int32),
        pages=pl.Series([p[1] for p in placed], dtype=pl.Int32),
        sha256=pl.Series([p[2] for p in placed], dtype=pl.String),
    )
    pdf_path = write_atomically(batch_dir / f"{batch_id}.pdf", pdf)
    write_atomically(
        batch_dir / f"{batch_id}-manifest.csv", manifest.select(MANIFEST_COLUMNS).write_csv().encode()
    )
    crash_point("print.batch_written")
    state.register("new_batch_items", manifest)
    try:
        state.execute(
            """
            insert into print_batch_items
            select document_id, kind, ?, batch_id, account_id, first_page, pages, sha256, ?
            from new_batch_items
            """,
            [cycle, (now or datetime.now(UTC)).replace(tzinfo=None)],
        )
    finally:
        state.unregister("new_batch_items")
    return PrintBatch(
        batch_id, pdf_path, manifest.select(MANIFEST_COLUMNS), rejects, len(PdfReader(pdf_path).pages)
    )
