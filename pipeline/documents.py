"""Invoice documents: the invoice model and its HTML (Jinja2).

Billing rules applied here:

* every amount printed is the model's amount, formatted with babel for the invoice's locale and currency;
  the printed total must equal the sum of the printed lines (checked, never recomputed);
* truth-in-billing layout: carrier charges (recurring, usage) are summarised apart from taxes and fees.

The PDFs themselves (WeasyPrint, the render pool, skipping unchanged invoices) are ``pipeline/rendering.py``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from babel.dates import format_date, format_interval, format_time
from babel.numbers import format_currency, format_decimal

INVOICE_TEMPLATE = "invoice.html.j2"
INVOICE_CSS = "invoice.css"
SECTIONS: tuple[str, ...] = (
    "recurring",
    "one_time",
    "usage",
    "discounts",
    "carrier_fees",
    "adjustments",
    "late_fees",
    "taxes",
)
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class InvoiceLine:
    """One line of the invoice, already rounded to cents."""

    section: str  # one of SECTIONS
    service_number: str | None  # E.164 like "+13125550100", None for account-level lines
    description: str
    quantity: Decimal | None
    unit: str | None  # "month", "call", ...
    amount: Decimal  # 2 decimals


@dataclass(frozen=True)
class UsageItem:
    """One rated call, for the itemised detail."""

    service_number: str
    start_local: datetime  # naive, subscriber-local
    called_number: str  # E.164 digits with '+'
    destination: str
    billsec: int
    billed_seconds: int
    charge: Decimal  # 4-6 decimals


@dataclass(frozen=True)
class InvoiceDocument:
    """Everything printed on one invoice."""

    invoice_number: str  # "INV-00000001"
    cycle: str  # "2026-10"
    issue_date: date
    due_date: date
    period_start: date
    period_end: date  # inclusive last day
    account_id: str
    account_name: str
    address_lines: tuple[str, ...]
    language: str  # "en" | "es"
    currency: str  # "USD"
    lines: tuple[InvoiceLine, ...]
    total: Decimal
    usage_items: tuple[UsageItem, ...]


# --------------------------------------------------------------------------------------------- strings


@lru_cache(maxsize=32)
def _load_strings(templates_dir: Path, language: str) -> dict[str, Any]:
    path = templates_dir / "strings" / f"{language}.json"
    if not path.is_file():
        raise ValueError(f"unsupported invoice language {language!r}: no {path}")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def load_strings(templates_dir: Path, language: str) -> dict[str, Any]:
    """Return the user-visible strings for ``language`` (rule: every printed word comes from strings/)."""
    return _load_strings(Path(templates_dir).resolve(), language)


def _autoescape(name: str | None) -> bool:
    return name is not None and (name.endswith(".html.j2") or name.endswith(".html"))


@lru_cache(maxsize=8)
def _environment(templates_dir: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        autoescape=_autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
        keep_trailing_newline=True,
    )


def template_environment(templates_dir: Path) -> jinja2.Environment:
    """Jinja2 environment for ``templates_dir``: autoescape on for HTML templates, strict undefined."""
    return _environment(Path(templates_dir).resolve())


@lru_cache(maxsize=8)
def _css_sha256(css_path: Path, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(css_path.read_bytes()).hexdigest()


def _stylesheet_digest(templates_dir: Path) -> str:
    css_path = Path(templates_dir).resolve() / INVOICE_CSS
    st = css_path.stat()
    return _css_sha256(css_path, st.st_mtime_ns, st.st_size)


# --------------------------------------------------------------------------------------------- formatting


def format_money(amount: Decimal, currency: str, locale: str, *, exact: bool = False) -> str:
    """Format a money amount with babel (rule: no float ever; ``exact`` keeps sub-cent rating precision)."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be a Decimal, got {type(amount).__name__}")
    if exact:
        return format_currency(amount, currency, locale=locale, decimal_quantization=False)
    return format_currency(amount, currency, locale=locale)


def format_duration(seconds: int) -> str:
    """Call duration as m:ss (minutes are not wrapped into hours), as printed in the itemised detail."""
    if seconds < 0:
        raise ValueError(f"negative duration {seconds}")
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def _format_quantity(
    quantity: Decimal | None, unit: str | None, units: dict[str, list[str]], locale: str
) -> str:
    if quantity is None:
        return ""
    text = format_decimal(quantity, locale=locale)
    if not unit:
        return text
    forms = units.get(unit)
    label = unit if forms is None else (forms[0] if quantity == 1 else forms[1])
    return f"{text} {label}"


def _check_document(doc: InvoiceDocument) -> None:
    for line in doc.lines:
        if line.section not in SECTIONS:
            raise ValueError(f"{doc.invoice_number}: unknown invoice line section {line.section!r}")
        if not isinstance(line.amount, Decimal) or line.amount != line.amount.quantize(_CENT):
            raise ValueError(f"{doc.invoice_number}: line amount {line.amount!r} is not a Decimal in cents")
    if not isinstance(doc.total, Decimal):
        raise TypeError(f"{doc.invoice_number}: total must be a Decimal")
    line_sum = sum((line.amount for line in doc.lines), Decimal("0"))
    if line_sum != doc.total:
        raise ValueError(f"{doc.invoice_number}: total {doc.total} differs from its lines' sum {line_sum}")


def _view_model(doc: InvoiceDocument, strings: dict[str, Any], css_sha256: str) -> dict[str, Any]:
    locale = strings["locale"]
    cur = doc.currency

    def money(amount: Decimal) -> str:
        return format_money(amount, cur, locale)

    units: dict[str, list[str]] = strings.get("units", {})
    sections = []
    carrier_subtotal = Decimal("0")
    for key in SECTIONS:
        lines = [line for line in doc.lines if line.section == key]
        if not lines and key != "taxes":
            continue
        subtotal = sum((line.amount for line in lines), Decimal("0"))
        if key != "taxes":
            carrier_subtotal += subtotal
        sections.append(
            {
                "key": key,
                "label": strings[f"section_{key}"],
                "subtotal": money(subtotal),
                "lines": [
                    {
                        "service": line.service_number or strings["account_level"],
                        "description": line.description,
                        "quantity": _format_quantity(line.quantity, line.unit, units, locale),
                        "amount": money(line.amount),
                    }
                    for line in lines
                ],
            }
        )

    groups: dict[str, list[UsageItem]] = {}
    for item in doc.usage_items:
        groups.setdefault(item.service_number, []).append(item)
    usage_groups = [
        {
            "service_number": number,
            "count": len(items),
            "calls": [
                {
                    "when": f"{format_date(c.start_local, 'short', locale=locale)} "
                    f"{format_time(c.start_local, 'HH:mm:ss', locale=locale)}",
                    "called": c.called_number,
                    "destination": c.destination,
                    "duration": format_duration(c.billsec),
                    "billed_seconds": str(c.billed_seconds),
                    "charge": format_money(c.charge, cur, locale, exact=True),
                }
                for c in sorted(items, key=lambda c: c.start_local)
            ],
        }
        for number, items in sorted(groups.items())
    ]

    return {
        "lang": doc.language,
        "css_sha256": css_sha256,
        "period": format_interval(doc.period_start, doc.period_end, "yMMMd", locale=locale),
        "issue_date": format_date(doc.issue_date, "long", locale=locale),
        "due_date": format_date(doc.due_date, "long", locale=locale),
        "sections": sections,
        "carrier_subtotal": money(carrier_subtotal),
        "total": money(doc.total),
        "usage_groups": usage_groups,
    }


def render_invoice_html(doc: InvoiceDocument, templates_dir: Path) -> str:
    """Render the invoice HTML (rule: printed total = sum of lines; taxes summarised apart; no tax id)."""
    _check_document(doc)
    templates_dir = Path(templates_dir)
    strings = load_strings(templates_dir, doc.language)

    def t(key: str, **kwargs: Any) -> str:
        return str(strings[key]).format(**kwargs)

    template = template_environment(templates_dir).get_template(INVOICE_TEMPLATE)
    view = _view_model(doc, strings, _stylesheet_digest(templates_dir))
    return template.render(doc=doc, s=strings, t=t, v=view)


def html_sha256(html: str) -> str:
    """SHA-256 of the rendered HTML; it covers the stylesheet too (its digest is embedded in the HTML)."""
    return hashlib.sha256(html.encode("utf-8")).hexdigest()
