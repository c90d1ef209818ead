"""Run by tests/test_crash_safety.py in a subprocess: deliver the test invoices through the SMTP server named
by ``CDRBILL_SMTP_*`` (the test's aiosmtpd), so that ``CDRBILL_CRASH_AT`` can kill it mid-delivery.

    python tests/smtp_crash_driver.py STATE_DB PDF_DIR OUT_DIR INV-… INV-…
"""

import os
import sys
from pathlib import Path

from test_documents import TEMPLATES, make_doc

from pipeline.delivery import DeliveryItem, deliver_invoices
from pipeline.smtp import transport_for
from pipeline.state import open_state


def main(state_db: str, pdf_dir: str, out_dir: str, *numbers: str) -> None:
    items = [
        DeliveryItem(make_doc(number), Path(pdf_dir) / f"{number}.pdf", "email", f"{number.lower()}@example.com")
        for number in numbers
    ]
    transport = transport_for(os.environ, Path(out_dir) / "outbox", "billing@cdrbill.invalid", retry_delay_s=0.01)
    with open_state(Path(state_db)) as con:
        deliver_invoices(
            con, items, Path(out_dir) / "outbox", Path(out_dir) / "print", "billing@cdrbill.invalid", TEMPLATES,
            transport=transport,
        )  # fmt: skip


if __name__ == "__main__":
    main(*sys.argv[1:])
