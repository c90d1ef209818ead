"""Itemisation attachments: the usage detail of a bill as a CSV file beside its PDF.

Billing rules applied here:

* an account whose itemisation level is ``csv`` (its preference, or a full itemisation over the row cap) gets
  every rated event of the cycle in ``<invoice>-usage.csv`` beside the PDF, for delivery to attach;
* the CSV carries the same values as the printed detail would: charges exact as rated (6 decimals), called
  numbers masked when the account asks for it, times in the line's local time, late usage flagged with the
  cycle it belongs to;
* the file is written aside and moved into place (a crash never leaves half a CSV); rewriting gives the
  same bytes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from pipeline.documents import InvoiceDocument, itemisation_csv_name
from pipeline.durable import write_atomically
from pipeline.masking import mask_called_number
from pipeline.rendering import RenderedDocument

CSV_COLUMNS = (
    "service_number",
    "start_local",
    "service",
    "called_number",
    "destination",
    "used_units",
    "billed_units",
    "included_units",
    "charge",
    "late_from_cycle",  # late usage: the earlier cycle the call belongs to (empty when on time)
)


def itemisation_csv_bytes(doc: InvoiceDocument) -> bytes:
    """The itemised usage of one bill as CSV (UTF-8, header row, sorted by service number and time)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for item in sorted(doc.usage_items, key=lambda i: (i.service_number, i.start_local, i.called_number)):
        writer.writerow(
            (
                item.service_number,
                item.start_local.isoformat(sep=" "),
                item.service,
                mask_called_number(item.called_number) if doc.mask_called_numbers else item.called_number,
                item.destination,
                item.billsec if item.units is None else item.units,
                item.billed_seconds if item.billed_units is None else item.billed_units,
                item.included_units,
                f"{item.charge:f}",
                item.late_from_cycle or "",
            )
        )
    return out.getvalue().encode("utf-8")


def write_itemisation_csvs(
    docs: Sequence[InvoiceDocument], rendered: Sequence[RenderedDocument], out_dir: Path
) -> list[RenderedDocument]:
    """Write ``<invoice>-usage.csv`` beside the PDF of every bill itemised as CSV and return the rendered
    documents with ``itemisation_csv`` set (None for the others); an unchanged CSV is not rewritten."""
    by_number = {doc.invoice_number: doc for doc in docs}
    result = []
    for item in rendered:
        doc = by_number[item.invoice_number]
        if doc.itemisation != "csv":
            result.append(item)
            continue
        path = Path(out_dir) / itemisation_csv_name(doc.invoice_number)
        data = itemisation_csv_bytes(doc)
        if not (path.is_file() and path.read_bytes() == data):
            write_atomically(path, data)
        result.append(replace(item, itemisation_csv=path))
    return result
