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
from babel import Locale
from babel.dates import format_date, format_interval, format_time
from babel.numbers import NumberPattern, format_decimal

from pipeline.call_detail import Column, detail_lines
from pipeline.masking import mask_called_number, redact_tax_ids

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
    category: str | None = None  # government_tax | regulatory_fee | recovery_fee | plan | voice | …
    taxable_base: Decimal | None = None  # tax lines: the amount the tax was computed on
    rate: Decimal | None = None  # tax lines: the rate in percent (plan lines: the monthly charge)


@dataclass(frozen=True)
class UsageItem:
    """One rated event (call, message, data session, value-added event), for the itemised detail."""

    service_number: str
    start_local: datetime  # naive, subscriber-local
    called_number: str  # E.164 digits with '+' (empty for data sessions)
    destination: str
    billsec: int
    billed_seconds: int
    charge: Decimal  # 4-6 decimals
    service: str = "voice"  # voice | sms | mms | data | vas
    units: int | None = None  # voice seconds, messages, bytes, events (None: billsec)
    billed_units: int | None = None  # units the rate applied to (None: billed_seconds)
    included_units: int = 0  # units a plan allowance covered at 0.00
    late_from_cycle: str | None = None  # late usage: the closed cycle (YYYY-MM) the call falls in


@dataclass(frozen=True)
class TierUsage:
    """The usage a tier table priced on the cycle's totals (graduated or volume), as shown on the bill."""

    tier_id: str
    service: str
    mode: str  # graduated | volume
    total_units: int
    breakdown: str  # per-tier units and prices, as rating wrote them
    charge: Decimal


@dataclass(frozen=True)
class BalanceBlock:
    """The invoice's balance block (state ledger ``invoice_balances``): previous balance − payments − credit
    notes = balance forward; + current charges = amount due."""

    previous_balance: Decimal
    payments: Decimal
    credit_notes: Decimal
    balance_forward: Decimal
    current_charges: Decimal
    amount_due: Decimal
    disputed_held: Decimal = Decimal("0.00")
    past_due: Decimal = Decimal("0.00")


@dataclass(frozen=True)
class DocumentTerms:
    """The carrier's terms printed on every bill (from settings)."""

    late_fee_percent: str = "1.50"
    late_fee_grace_days: int = 5
    questions_phone: str | None = None  # None: the strings' billing_phone


ITEMISATION_LEVELS: tuple[str, ...] = ("full", "summary", "csv")


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
    balance: BalanceBlock | None = None  # None: no balance block (amount due = total)
    terms: DocumentTerms = DocumentTerms()
    itemisation: str = "full"  # full | summary | csv (resolved: the cap already applied)
    mask_called_numbers: bool = False
    einvoice: bool = False  # embed an EN 16931 (Factur-X) XML in a PDF/A-3b
    tier_usage: tuple[TierUsage, ...] = ()
    usage_rows: int | None = None  # itemised rows of the account (None: len(usage_items))

    @property
    def amount_due(self) -> Decimal:
        """What the customer pays: this invoice's total plus the balance brought forward."""
        return self.total if self.balance is None else self.balance.amount_due


# --------------------------------------------------------------------------------------------- strings


@lru_cache(maxsize=32)
def _load_strings(templates_dir: Path, language: str, document: str) -> dict[str, Any]:
    path = templates_dir / "strings" / f"{document + '.' if document else ''}{language}.json"
    if not path.is_file():
        raise ValueError(f"unsupported {document or 'invoice'} language {language!r}: no {path}")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def load_strings(templates_dir: Path, language: str, document: str = "") -> dict[str, Any]:
    """Return the user-visible strings of a document (the invoice, or e.g. ``dunning``) for ``language``
    (rule: every printed word comes from strings/)."""
    return _load_strings(Path(templates_dir).resolve(), language, document)


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


@lru_cache(maxsize=32)
def babel_locale(name: str) -> Locale:
    """The parsed babel ``Locale`` for a locale name like ``es_US``, parsed once per process (babel parses it
    again on every formatting call that is given a name: ~15,000 parses for 49 invoices)."""
    return Locale.parse(name)


def _as_locale(locale: str | Locale) -> Locale:
    return locale if isinstance(locale, Locale) else babel_locale(locale)


@lru_cache(maxsize=32)
def _currency_pattern(locale: Locale, currency: str) -> NumberPattern:
    # what ``babel.numbers.format_currency`` looks up on every call: the locale's standard currency pattern
    pattern: NumberPattern = locale.currency_formats["standard"]
    return pattern


def format_money(amount: Decimal, currency: str, locale: str | Locale, *, exact: bool = False) -> str:
    """Format a money amount with babel (rule: no float ever; ``exact`` keeps sub-cent rating precision).

    The same text as ``babel.numbers.format_currency(amount, currency, locale=locale)`` (with
    ``decimal_quantization=False`` when exact), with the locale and its currency pattern looked up once and the
    text of an amount already formatted reused (an invoice's calls share a few hundred distinct charges)."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be a Decimal, got {type(amount).__name__}")
    # equal Decimals print alike (babel normalises the value first) except for the sign of a zero
    return _money_text(amount, amount.is_signed(), currency, _as_locale(locale), exact)


@lru_cache(maxsize=8192)
def _money_text(amount: Decimal, signed: bool, currency: str, locale: Locale, exact: bool) -> str:
    return _currency_pattern(locale, currency).apply(
        amount, locale, currency=currency, decimal_quantization=not exact
    )


@lru_cache(maxsize=1024)
def _short_date(day: date, locale: Locale) -> str:
    """A day in the locale's short date format (``10/12/26``), the date half of an itemised call's time."""
    return format_date(day, "short", locale=locale)


def format_duration(seconds: int) -> str:
    """Call duration as m:ss (minutes are not wrapped into hours), as printed in the itemised detail."""
    if seconds < 0:
        raise ValueError(f"negative duration {seconds}")
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def _format_quantity(
    quantity: Decimal | None, unit: str | None, units: dict[str, list[str]], locale: Locale
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
    if doc.itemisation not in ITEMISATION_LEVELS:
        raise ValueError(
            f"{doc.invoice_number}: itemisation {doc.itemisation!r} is not one of {ITEMISATION_LEVELS}"
        )
    bal = doc.balance
    if bal is not None:
        if bal.current_charges != doc.total:
            raise ValueError(
                f"{doc.invoice_number}: balance block current charges {bal.current_charges} differ from the "
                f"invoice total {doc.total}"
            )
        if bal.previous_balance - bal.payments - bal.credit_notes != bal.balance_forward:
            raise ValueError(f"{doc.invoice_number}: balance forward {bal.balance_forward} does not add up")
        if bal.balance_forward + bal.current_charges != bal.amount_due:
            raise ValueError(f"{doc.invoice_number}: amount due {bal.amount_due} does not add up")


# Taxes are printed apart by who imposes them: government taxes, then government-mandated regulatory fees
# (USF, 911, …); the carrier's own recovery fee is a carrier charge (section carrier_fees), never a tax.
TAX_GROUPS: tuple[tuple[str, tuple[str | None, ...]], ...] = (
    ("taxes_government", ("government_tax", None)),
    ("taxes_regulatory", ("regulatory_fee",)),
)
SERVICES: tuple[str, ...] = ("voice", "sms", "mms", "data", "vas")


def _quantity_text(item: UsageItem, strings: dict[str, Any], locale: Locale) -> tuple[str, str, str]:
    """(used, billed, included) as printed: voice m:ss and billed seconds, messages and events as counts,
    data in MB (decimal, 2 places) — the units each service is rated in."""
    units = item.billsec if item.units is None else item.units
    billed = item.billed_seconds if item.billed_units is None else item.billed_units
    included = item.included_units
    if item.service == "voice":
        return format_duration(item.billsec), str(billed), format_duration(included) if included else ""
    if item.service == "data":

        def mb(n: int) -> str:
            return f"{format_decimal(Decimal(n).scaleb(-6), format='#,##0.00', locale=locale)} MB"

        return mb(units), mb(billed), mb(included) if included else ""
    return (
        format_decimal(units, locale=locale),
        format_decimal(billed, locale=locale),
        format_decimal(included, locale=locale) if included else "",
    )


def _period(cycle: str, locale: Locale) -> str:
    """A bill cycle ``YYYY-MM`` as its month in words (``September 2026``, ``septiembre 2026``)."""
    return format_date(date.fromisoformat(cycle + "-01"), "LLLL y", locale=locale)


def _usage_groups(doc: InvoiceDocument, strings: dict[str, Any], locale: Locale) -> list[dict[str, Any]]:
    by_number: dict[str, list[UsageItem]] = {}
    for item in doc.usage_items:
        by_number.setdefault(item.service_number, []).append(item)
    groups = []
    for number, items in sorted(by_number.items()):
        services = []
        for service in SERVICES:
            rows = sorted((i for i in items if i.service == service), key=lambda i: i.start_local)
            if not rows:
                continue
            included = sum(1 for r in rows if r.included_units)
            late = sum(1 for r in rows if r.late_from_cycle)
            services.append(
                {
                    "service": service,
                    "title": strings[f"detail_service_{service}"],
                    "count": len(rows),
                    "count_text": _count_text(strings, service, len(rows), locale),
                    "included_text": t_format(strings, "detail_included", count=included) if included else "",
                    "late_text": t_format(strings, "detail_late", count=late) if late else "",
                    **_detail(doc, service, rows, strings, locale),
                }
            )
        groups.append({"service_number": number, "count": len(items), "services": services})
    return groups


def _detail(
    doc: InvoiceDocument, service: str, rows: list[UsageItem], strings: dict[str, Any], locale: Locale
) -> dict[str, Any]:
    """One service's itemised usage as fixed-width lines (pipeline/call_detail.py): the heading line, and per call
    its line and, for late usage (billed after its own cycle was final), the period it belongs to, printed under
    its destination. The "included" column is printed only where a call has included units (rule: no empty
    column); called numbers are masked when the account asks for it."""
    quantities = [_quantity_text(r, strings, locale) for r in rows]
    when = [
        f"{_short_date(r.start_local.date(), locale)} {format_time(r.start_local, 'HH:mm:ss', locale=locale)}"
        for r in rows
    ]
    called = [
        mask_called_number(r.called_number) if doc.mask_called_numbers else r.called_number for r in rows
    ]
    charges = [format_money(r.charge, doc.currency, locale, exact=True) for r in rows]
    columns = [
        Column(strings["col_datetime"], when),
        Column(strings["col_called"], called),
        Column(strings["col_destination"], [redact_tax_ids(r.destination or "") for r in rows]),
        Column(strings[f"col_used_billed_{service}"], [f"{q[0]} ({q[1]})" for q in quantities], right=True),
        *(
            [Column(strings["col_included"], [q[2] for q in quantities], right=True)]
            if any(q[2] for q in quantities)
            else []
        ),
        Column(strings["col_charge"], charges, right=True),
    ]
    heading, lines, offset = detail_lines(columns, flexible=2)
    return {
        "heading_line": heading,
        "late_indent": "\n" + " " * offset,  # a late marker's own line starts under the destination
        "rows": [
            {
                "line": line,
                "late": t_format(strings, "detail_late_marker", period=_period(r.late_from_cycle, locale))
                if r.late_from_cycle
                else "",
            }
            for r, line in zip(rows, lines, strict=True)
        ],
    }


def _count_text(strings: dict[str, Any], service: str, count: int, locale: Locale) -> str:
    forms = strings[f"detail_count_{service}"]
    return f"{format_decimal(count, locale=locale)} {forms[0] if count == 1 else forms[1]}"


def t_format(strings: dict[str, Any], key: str, **kwargs: Any) -> str:
    """A string of the strings file with its placeholders filled (rule: every printed word from strings/)."""
    return str(strings[key]).format(**kwargs)


def _view_model(doc: InvoiceDocument, strings: dict[str, Any], css_sha256: str) -> dict[str, Any]:
    locale = babel_locale(strings["locale"])
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
                        "description": redact_tax_ids(line.description),
                        "quantity": _format_quantity(line.quantity, line.unit, units, locale),
                        "amount": money(line.amount),
                    }
                    for line in lines
                ],
            }
        )
    tax_lines = [line for line in doc.lines if line.section == "taxes"]
    tax_groups = []
    for key, categories in TAX_GROUPS:
        group = [line for line in tax_lines if line.category in categories]
        if group or key == "taxes_government":
            tax_groups.append(
                {"label": strings[key], "subtotal": money(sum((g.amount for g in group), Decimal("0")))}
            )
    other = [line for line in tax_lines if not any(line.category in c for _, c in TAX_GROUPS)]
    if other:
        tax_groups.append(
            {
                "label": strings["section_taxes"],
                "subtotal": money(sum((o.amount for o in other), Decimal("0"))),
            }
        )

    bal = doc.balance
    balance = None
    if bal is not None:
        balance = {
            "previous_balance": money(bal.previous_balance),
            "payments": money(-bal.payments),
            "credit_notes": money(-bal.credit_notes) if bal.credit_notes else None,
            "balance_forward": money(bal.balance_forward),
            "disputed_held": money(bal.disputed_held) if bal.disputed_held else None,
            "past_due": money(bal.past_due) if bal.past_due else None,
        }
    phone = doc.terms.questions_phone or strings["billing_phone"]
    n_rows = len(doc.usage_items) if doc.usage_rows is None else doc.usage_rows
    return {
        "lang": doc.language,
        "css_sha256": css_sha256,
        "account_name": redact_tax_ids(doc.account_name),
        "address_lines": [redact_tax_ids(line) for line in doc.address_lines],
        "period": format_interval(doc.period_start, doc.period_end, "yMMMd", locale=locale),
        "issue_date": format_date(doc.issue_date, "long", locale=locale),
        "due_date": format_date(doc.due_date, "long", locale=locale),
        "sections": sections,
        "tax_groups": tax_groups,
        "carrier_subtotal": money(carrier_subtotal),
        "total": money(doc.total),
        "balance": balance,
        "amount_due": money(doc.amount_due),
        "late_fee_text": t_format(
            strings,
            "late_fee_text",
            percent=format_decimal(Decimal(doc.terms.late_fee_percent), locale=locale),
            grace_days=doc.terms.late_fee_grace_days,
        ),
        "phone": phone,
        "itemisation": doc.itemisation,
        "itemisation_note": {
            "full": "",
            "summary": t_format(strings, "itemisation_summary_note", count=n_rows, phone=phone),
            "csv": t_format(
                strings, "itemisation_csv_note", count=n_rows, file=itemisation_csv_name(doc.invoice_number)
            ),
        }[doc.itemisation],
        "usage_groups": _usage_groups(doc, strings, locale) if doc.itemisation == "full" else [],
        "tier_usage": [
            {
                "tier_id": tier.tier_id,
                "service": strings[f"detail_service_{tier.service}"],
                "mode": strings.get(f"tier_mode_{tier.mode}", tier.mode),
                "total_units": format_decimal(tier.total_units, locale=locale),
                "breakdown": tier.breakdown,
                "charge": money(tier.charge),
            }
            for tier in doc.tier_usage
        ],
    }


def itemisation_csv_name(invoice_number: str) -> str:
    """File name of an invoice's itemisation CSV, written beside its PDF."""
    return f"{invoice_number}-usage.csv"


def render_invoice_html(doc: InvoiceDocument, templates_dir: Path) -> str:
    """Render the invoice HTML (rule: printed total = sum of lines; taxes summarised apart; no tax id)."""
    _check_document(doc)
    templates_dir = Path(templates_dir)
    strings = load_strings(templates_dir, doc.language)

    def t(key: str, **kwargs: Any) -> str:
        return t_format(strings, key, **kwargs)

    template = template_environment(templates_dir).get_template(INVOICE_TEMPLATE)
    view = _view_model(doc, strings, _stylesheet_digest(templates_dir))
    return template.render(doc=doc, s=strings, t=t, v=view)


def html_sha256(html: str) -> str:
    """SHA-256 of the rendered HTML; it covers the stylesheet too (its digest is embedded in the HTML)."""
    return hashlib.sha256(html.encode("utf-8")).hexdigest()
