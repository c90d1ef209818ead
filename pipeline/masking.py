"""Personal data on documents: what may be printed, and how it is masked.

Billing rules applied here:

* no SSN or tax id is ever printed: any text shaped like one (``123-45-6789``, ``12-3456789``) is blanked
  before it reaches a document, whatever field it hides in;
* an account number is printed in full only on the customer's own bill; anywhere else (print manifests,
  e-mail subjects, logs) it is masked to its last four characters;
* a called number is masked to its last four digits when the account's privacy setting asks for it.
"""

from __future__ import annotations

import re

MASK = "•"
_TAX_ID = re.compile(r"(?<![\d-])(?:\d{3}-\d{2}-\d{4}|\d{2}-\d{7}|\d{9})(?![\d-])")
TAX_ID_BLANK = "[redacted]"


def mask_account_number(account_id: str, keep: int = 4) -> str:
    """Account number for use outside the customer's own bill: all but its last ``keep`` characters masked
    (``ACC-0001`` → ``••••0001``)."""
    text = str(account_id)
    if len(text) <= keep:
        return MASK * len(text)
    return MASK * (len(text) - keep) + text[-keep:]


def mask_called_number(number: str, keep: int = 4) -> str:
    """A called number masked to its last ``keep`` digits (``+13125559876`` → ``+•••••••9876``); the leading
    ``+`` stays so the reader still sees it is a phone number."""
    text = str(number)
    digits = [i for i, ch in enumerate(text) if ch.isdigit()]
    shown = set(digits[-keep:])
    return "".join(MASK if (ch.isdigit() and i not in shown) else ch for i, ch in enumerate(text))


def redact_tax_ids(text: str) -> str:
    """Blank anything shaped like an SSN, EIN or bare 9-digit tax id in free text (rule: never on a document)."""
    return _TAX_ID.sub(TAX_ID_BLANK, text)


def contains_tax_id(text: str) -> bool:
    """True when ``text`` holds something shaped like an SSN or tax id."""
    return _TAX_ID.search(text) is not None
