"""The warehouse's data dictionary: what each table of ``warehouse.duckdb`` holds and what each column means,
rendered to ``docs/WAREHOUSE.md`` from a published warehouse (``python -m pipeline.warehouse_dictionary
WAREHOUSE``); a test renders it from the sample cycle and fails when the doc and the tables differ."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "WAREHOUSE.md"

TABLE_NOTES: dict[str, str] = {
    "usage_files": "Files: every usage file registered, one row each, with what happened to it (loaded, "
    "duplicate_file, quarantined and why).",
    "usage_records": "Usage events: every record read from a loaded file (raw text apart), normalised, with the "
    "door it left by (status).",
    "suspense": "Records held back by mediation or rating, with the reason code (see suspense_reasons) and age.",
    "duplicates": "Records recognised as copies of an earlier record (same call seen twice).",
    "discarded": "Records dropped by a written rule (e.g. unanswered calls), never billed.",
    "rated_usage": "Rated events: each billable event with its price book, rate row and exact charge (6 decimals).",
    "accounts": "Customer accounts, masked: no tax id / SSN, no street address, no e-mail.",
    "service_numbers": "Which account held each telephone number, and when.",
    "agents": "Sales agents (resellers) who sell the carrier's service.",
    "plans": "Rate plans and their monthly recurring charge.",
    "price_books": "Which rate card prices a plan's service, per agent and state, over time.",
    "rate_cards": "Rate card rows: prefix, rate, billing increments, connect fee, rounding.",
    "taxes": "Taxes and fees: authority, level, rate, base and rounding.",
    "products": "Products sold besides plans (add-ons, equipment leases).",
    "subscriptions": "Accounts' subscriptions to products.",
    "discounts": "Discounts granted to accounts.",
    "equipment": "Equipment sold or leased to accounts.",
    "commission_plans": "Agents' commission plans (percent of billed or collected revenue).",
    "adjustments": "Posted adjustments (credit, debit, rerate, dispute_resolution); pending until an invoice "
    "carries them.",
    "payments": "Payments received.",
    "payment_allocations": "Payments applied to invoices, oldest invoice first.",
    "disputes": "Disputed invoice amounts and their resolution.",
    "credit_notes": "Credit notes issued against finalised invoices (own series, CN-…).",
    "invoice_balances": "The balance block of each invoice (previous balance, payments, amount due, past due).",
    "suppressed_bills": "Accounts with charges but no invoice in a cycle, and why.",
    "commission_lines": "Commissions: one row per agent and account per cycle.",
    "agent_statements": "Commission statements: one row per agent per cycle.",
    "invoices": "Finalised invoices (never changed once written).",
    "invoice_lines": "Invoice lines; the invoice total is the sum of its lines.",
    "tax_lines": "Tax and fee lines of the invoices: what a tax-liability return is filed from.",
    "deliveries": "Deliveries: one row per invoice and channel sent (e-mail or print).",
    "file_sequences": "The sequence numbers each loaded file (or EMI pack) carried, per source.",
    "suspense_reasons": "The suspense reason catalogue: every code a record can be suspended with.",
    "quarantine_reasons": "The reasons a whole file is quarantined for.",
    "rerate_events": "Rerating deltas per event: what changed when a cycle was rated again.",
    "rerate_accounts": "Rerating deltas per account: previous and new usage.",
    "bounces": "E-mail bounces (when the delivery stage records them).",
    "print_jobs": "Print jobs (when the delivery stage records them).",
    "reminders": "Dunning reminders (when the delivery stage records them).",
    "published": "When this warehouse was published and the latest final cycle in it.",
}

COLUMN_NOTES: dict[str, str] = {
    "suspense_reasons.code": "suspense reason code",
    "quarantine_reasons.code": "quarantine reason code",
    "suspense_reasons.stage": "stage that uses the code (parse, normalise, mediation, rating)",
    "file_sequences.kind": "file (number in the file name) | pack (EMI pack header)",
    "tax_lines.kind": "tax category (government_tax, regulatory_fee, …)",
    "account_id": "account key (ACC-…)",
    "account_name": "customer name",
    "account_number_masked": "account number with all but the last four characters masked",
    "account_type": "residential | business",
    "accounts": "number of accounts",
    "activated_on": "first day of service",
    "adjustment_id": "deterministic adjustment id",
    "age_days": "whole days from the call date to the publication",
    "agent_id": "sales agent key",
    "agent_name": "agent's name",
    "allocated_cycle": "cycle whose finalisation applied the payment",
    "allowance_id": "plan allowance that covered (part of) the event",
    "amount": "amount in the currency (credit < 0 for adjustments)",
    "amount_due": "balance forward + current charges",
    "approved_by": "who approved it",
    "authority": "tax authority the amount is owed to",
    "balance_forward": "previous balance − payments − credit notes",
    "band_policy": "how a call crossing time bands is priced",
    "band_set": "time-band set the rate card uses",
    "base": "what the tax is computed on",
    "basis": "billed | collected revenue",
    "billed": "in_advance | in_arrears",
    "billed_revenue": "revenue billed (carrier charges net of discounts)",
    "billed_seconds": "seconds billed after the billing increments",
    "billed_units": "units billed after increments (seconds, messages, bytes, events)",
    "billing_city": "billing address city",
    "billing_increment": "first/next increment in seconds, e.g. 60/60",
    "billing_state": "billing address state",
    "billing_zip": "billing address ZIP code",
    "billsec": "answered seconds as the switch gave them",
    "call_date": "call date in the service state's time zone",
    "call_id": "switch call id (legs of one call share it)",
    "called_number": "called number, E.164",
    "calling_number": "calling number, E.164",
    "carried_on_invoice": "later invoice whose balance shows it",
    "category": "kind of line or entry (plan, voice, discount, government_tax, credit, …)",
    "channel": "email | print",
    "charge_amount": "exact charge, 6 decimals",
    "charge_limit": "minimum or maximum charge applied, if any",
    "charged_number": "service number billed for the event, E.164",
    "charged_units": "units charged after the allowance",
    "code": "plan/product/order id, call jurisdiction, tax code, … (by section)",
    "collected_revenue": "revenue share of payments applied",
    "commission": "commission amount",
    "commission_base": "revenue the commission percent applies to",
    "commission_percent": "agent's default commission percent",
    "commission_plan_id": "commission plan applied",
    "connect_fee": "fee per answered call",
    "control_records": "header/trailer records of the file",
    "credit_granted": "amount credited by the resolution",
    "credit_note_number": "credit note number (CN-…)",
    "credit_notes": "credit notes since the previous invoice",
    "currency": "ISO 4217 currency",
    "current_charges": "this invoice's total",
    "cycle": "bill cycle YYYY-MM",
    "deactivated_on": "last day of service (null while active)",
    "delivered_at": "when it was sent or written for print",
    "delivery_preference": "email | paper",
    "delta": "new − previous (exact)",
    "description": "text shown on the invoice or catalogue",
    "destination": "rate card destination name",
    "discount_id": "discount key",
    "discounts_reduce_base": "whether discounts reduce the taxable base",
    "disposition": "switch disposition (ANSWERED, NO ANSWER, …)",
    "dispute_id": "dispute key",
    "disputed_held": "part of the amount due under open dispute",
    "due_date": "payment due date",
    "duplicate_of": "file_id of the first copy of a duplicate file",
    "duplicate_of_file_id": "file of the record this one duplicates",
    "duplicate_of_line_no": "line of the record this one duplicates",
    "effective_date": "date the adjustment takes effect",
    "event_code": "value-added event code (vas), else null",
    "file_id": "usage file key",
    "file_name": "landed file name",
    "finalized_at": "when the invoice was numbered and finalised",
    "first_increment_seconds": "first billing increment",
    "fix": "what to do about it",
    "from_second": "step of the rate starting at this second",
    "included_units": "units covered by the allowance",
    "increment_seconds": "next billing increments",
    "invoice_number": "invoice number (INV-…)",
    "issue_date": "date of issue",
    "issued_at": "when it was issued",
    "jurisdiction": "call jurisdiction (rated events) or state of a tax or line (invoice lines)",
    "kind": "kind of tax or fee",
    "language": "invoice language",
    "latest_cycle": "latest finalised cycle",
    "level": "federal | state | local",
    "lifeline_exempt": "whether Lifeline accounts are exempt",
    "line_no": "line in the file or invoice (1-based)",
    "max_cycles": "cycles the discount lasts",
    "maximum_charge": "maximum charge per event",
    "meaning": "what the code means",
    "merged_into_file_id": "file of the record this leg was merged into",
    "merged_into_line_no": "line of the record this leg was merged into",
    "message_id": "e-mail Message-ID",
    "method": "computation or payment method",
    "min_tenure_months": "months of tenure required",
    "minimum_charge": "minimum charge per event",
    "model": "equipment model",
    "monthly_charge": "monthly recurring charge",
    "new_charge": "charge after the rerate",
    "new_rate_row": "rate card:prefix after the rerate",
    "new_status": "rated | suspended after the rerate",
    "new_usage": "rated usage after the rerate (exact)",
    "new_usage_billed": "new usage as the bill run rounds it (cents)",
    "opened_on": "date the dispute was opened",
    "ownership": "sold | leased",
    "past_due": "undisputed amount past due at the issue date",
    "payment_id": "payment key",
    "payments": "payments since the previous invoice",
    "peer_record_id": "record id of the other leg of the call",
    "per_line_amount": "fixed fee per line",
    "percent": "percent applied",
    "percent_taxable": "share of the base that is taxable (percent)",
    "period_end": "last day of the billed period",
    "period_start": "first day of the billed period",
    "plan_id": "rate plan key",
    "plan_name": "plan name",
    "posted_at": "when it was posted",
    "posted_cycle": "cycle whose finalisation posted the payment",
    "prefix": "rate card prefix matched",
    "previous_balance": "amount due on the previous invoice",
    "previous_charge": "charge before the rerate",
    "previous_rate_row": "rate card:prefix before the rerate",
    "previous_status": "rated | suspended before the rerate",
    "previous_usage": "rated usage before the rerate (exact)",
    "price": "sale price or lease charge",
    "price_book_id": "price book key",
    "price_book_level": "how specific the price book match was",
    "product_id": "product key",
    "product_name": "product name",
    "product_type": "addon | equipment | …",
    "provider": "who the charge is for: the carrier or the tax authority",
    "published_at": "publication time",
    "qualifier": "'' for file names; the EMI pack's creation date",
    "quantity": "quantity billed",
    "rate": "plan monthly charge, or tax rate in percent",
    "rate_card_id": "rate card key",
    "rate_event_code": "event code of the rate row",
    "rate_jurisdiction": "jurisdiction of the rate row",
    "rate_per_unit": "rate per unit_seconds (or unit)",
    "rate_percent": "tax rate in percent",
    "raw": "the raw record text as received",
    "reason": "reason code or text",
    "reason_detail": "details of a quarantine",
    "received_on": "date the payment was received",
    "record_sequence": "record sequence number in the file",
    "recorded_at": "when it was recorded",
    "records": "usage records read from the file",
    "reference": "payment reference",
    "registered_at": "when the file was registered",
    "registered_cycle": "cycle the file was registered in",
    "resolved_on": "date the dispute was resolved",
    "roaming_surcharge": "surcharge for an event abroad",
    "roaming_zone": "roaming zone of the visited country",
    "rounding_decimals": "decimals the charge is rounded to",
    "rounding_method": "half_up | half_even | up | down",
    "rounding_rule": "rounding method and decimals applied",
    "scope": "what the discount applies to",
    "section": "recurring | one_time | usage | discounts | taxes | adjustments | late_fees",
    "sequence_no": "number in its series or file sequence",
    "serial_number": "equipment serial number",
    "series": "numbering series",
    "service": "voice | sms | mms | data | vas",
    "service_number": "telephone number, E.164",
    "service_state": "state where the line is served",
    "sha256": "SHA-256 of the file's bytes",
    "size_bytes": "file size",
    "sms_chars": "message length in characters, when known",
    "source": "where it came from (input row, rerate:C, dispute:…)",
    "source_id": "usage source (reference/sources/<id>.toml)",
    "source_record_id": "record id given by the switch",
    "stage": "stage that suspended it, or of the catalogue code",
    "start_utc": "call start, UTC",
    "state": "US state",
    "status": "outcome (loaded/duplicate_file/quarantined; sent; open/resolved; …)",
    "subscription_id": "subscription key",
    "target": "what the discount targets",
    "tax_category": "what taxes see: the charge category or the tax kind",
    "tax_code": "tax code",
    "tax_name": "tax name",
    "taxable_base": "amount the tax was computed on",
    "taxes_on": "tax levels this tax is computed on (tax on tax)",
    "time_band": "time band of the rate row",
    "time_bands": "time bands the call was priced in",
    "total_amount": "invoice total (sum of its lines)",
    "unit": "unit of the quantity",
    "unit_seconds": "seconds the rate per unit is for",
    "units": "voice: seconds; sms/mms: messages; data: bytes; vas: events",
    "unrounded_charge": "charge before rounding (12 decimals)",
    "valid_from": "first day valid",
    "valid_to": "last day valid (null: open-ended)",
    "value": "discount amount or percent",
    "visited_country": "ISO country where the event happened when roaming",
}


def warehouse_columns(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    """Every table of the warehouse with its columns (name, type), in the order they are stored."""
    rows = con.execute(
        "select table_name, column_name, data_type from information_schema.columns "
        "where table_catalog = current_database() and table_schema = 'main' "
        "order by table_name, ordinal_position"
    ).fetchall()
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in rows:
        tables.setdefault(table, []).append((column, data_type))
    return tables


def render_dictionary(con: duckdb.DuckDBPyConnection) -> str:
    """``docs/WAREHOUSE.md``: each table's purpose and every column with its type and meaning."""
    out = [
        "# The analysts' warehouse: data dictionary",
        "",
        "`warehouse.duckdb` (in `CDRBILL_HOME`) is rebuilt in a new file after each run and renamed over the old "
        'one: open it read-only (`duckdb.connect(path, read_only=True)` or `cdrbill sql "select …"`); an open '
        "connection keeps reading the warehouse it opened and never blocks a run. The tables below are the stable "
        "interface; preset reports (`sql/reports/`, `cdrbill report list`) read only these.",
        "",
        "This page is generated from a published warehouse (`python -m pipeline.warehouse_dictionary "
        "WAREHOUSE > docs/WAREHOUSE.md`); `tests/test_warehouse_dictionary.py` fails when it differs from the "
        "sample cycle's warehouse. Tables `bounces`, `print_jobs` and `reminders` appear once the delivery "
        "stage writes those ledgers.",
        "",
    ]
    for table, columns in warehouse_columns(con).items():
        out += [
            f"## `{table}`",
            "",
            TABLE_NOTES.get(table, ""),
            "",
            "| column | type | meaning |",
            "|---|---|---|",
        ]
        for column, data_type in columns:
            note = COLUMN_NOTES.get(f"{table}.{column}", COLUMN_NOTES.get(column, ""))
            out.append(f"| `{column}` | {data_type} | {note} |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Print the dictionary of the warehouse named on the command line."""
    args = sys.argv[1:] if argv is None else argv
    with duckdb.connect(args[0], read_only=True) as con:
        sys.stdout.write(render_dictionary(con))
    return 0


if __name__ == "__main__":
    sys.exit(main())
