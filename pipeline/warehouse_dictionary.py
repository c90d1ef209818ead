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
    "credit_note_lines": "The lines of each credit note (e.g. a usage credit and its tax); a credit note's amount "
    "is the sum of its lines. A credit note issued before lines existed has none.",
    "invoice_balances": "The balance block of each invoice (previous balance, payments, amount due, past due).",
    "suppressed_bills": "Accounts with charges but no invoice in a cycle, and why.",
    "commission_lines": "Commissions: one row per agent and account per cycle.",
    "agent_statements": "Commission statements: one row per agent per cycle.",
    "invoices": "Finalised invoices (never changed once written).",
    "invoice_lines": "Invoice lines; the invoice total is the sum of its lines.",
    "revenue_lines": "Revenue lines: every invoice line with its account's service state, agent and plan and its "
    "revenue class (what the revenue reports group; their rows sum to the invoice register).",
    "tax_lines": "Tax and fee lines of the invoices: what a tax-liability return is filed from.",
    "deliveries": "Deliveries: one row per document and channel (invoices by e-mail or print, payment reminder "
    "e-mails, credit notes by e-mail or print).",
    "file_sequences": "The sequence numbers each loaded file (or EMI pack) carried, per source.",
    "suspense_reasons": "The suspense reason catalogue: every code a record can be suspended with.",
    "quarantine_reasons": "The reasons a whole file is quarantined for.",
    "rerate_events": "Rerating deltas per event: what changed when a cycle was rated again.",
    "rerate_accounts": "Rerating deltas per account: previous and new usage.",
    "bounces": "E-mail bounces: one row per recipient result of a delivery status report (RFC 3464) or SMTP refusal.",
    "delivery_preference_overrides": "Accounts switched from e-mail to paper after bounces (wins over accounts).",
    "cycle_approvals": "Who approved each cycle's delivery and when (and revocations before any delivery).",
    "print_batch_items": "Each paper document in the print batch that carried it (printed once, ever).",
    "payment_reminders": "Payment reminders (dunning): one per invoice and level, ever.",
    "allowances": "Units a plan includes each cycle, per service and zone.",
    "plan_changes": "Accounts' plan changes (old plan to new plan from a date).",
    "orders": "One-time charges ordered (activation, installation, number port, …).",
    "state_time_zones": "Each state's time zone (calls are dated and banded in it).",
    "recycled_records": "Recycled suspense: each suspended record a recycle run resubmitted, with the reason it was "
    "suspended for (one row per record and reason).",
    "published": "When this warehouse was published, the latest final cycle in it, and how it was built.",
    "publication_parts": "The parts the large tables were built from (a loaded file's usage records, a cycle's "
    "rated usage or rerate events) and what each was: the next publication reads from the lake only the parts "
    "that changed.",
    "late_usage": "Late usage: each record whose cycle was already final when it arrived, and the next open cycle "
    "that bills it (rated_usage.late_from_cycle flags the events).",
}

COLUMN_NOTES: dict[str, str] = {
    "published.publication": "full (every part read from the lake) | incremental (only the parts changed since "
    "the last publication; the others kept)",
    "publication_parts.table_name": "usage_records | rated_usage | rerate_events",
    "publication_parts.part": "the loaded file's file_id (usage_records) or the cycle (rated_usage, rerate_events)",
    "publication_parts.fingerprint": "digest of the part's lake versions, the SQL that reads it, DuckDB's version "
    "and (usage records) the file's late-usage rows; a new one means the part is read again",
    "credit_note_lines.line_no": "line of the credit note (1-based)",
    "credit_note_lines.description": "the line's own text; null: the corrected invoice line's description (or, "
    "for the only line of a credit note, the credit on the invoice for its reason)",
    "credit_note_lines.invoice_line_no": "the line of the original invoice (invoice_lines.line_no) it credits, if any",
    "credit_note_lines.amount": "amount credited by the line (> 0)",
    "deliveries.channel": "email | print (invoices); reminder (payment reminder e-mails); credit_note | "
    "credit_note_print (credit notes by e-mail or paper)",
    "deliveries.invoice_number": "the document delivered: invoice (INV-…), payment reminder (REM-…) or credit note "
    "(CN-…)",
    "revenue_lines.is_tax_or_fee": "true for government taxes and fees and the carrier's recovery fees "
    "(sections taxes, carrier_fees); false for charges",
    "revenue_lines.revenue_service": "usage_<service> for a usage line (usage_voice, usage_data, …), else the "
    "line's section (recurring, one_time, taxes, …)",
    "revenue_lines.call_jurisdiction": "a usage line's call jurisdiction (voice) or service; '(not usage)' for "
    "other lines",
    "revenue_lines.service_state": "the account's service state (reference data as published)",
    "late_from_cycle": "late usage: the final cycle the call falls in, billed in this cycle instead (null: on time)",
    "usage_records.cycle": "bill cycle YYYY-MM that counts the record: its call's, or for late usage the one that "
    "bills it",
    "late_usage.call_cycle": "the cycle the call falls in (already final when the record arrived)",
    "late_usage.billed_cycle": "the next open cycle, which bills it (or suspends it LATE_USAGE_TOO_OLD)",
    "late_usage.route": "late_file (its file registered after call_cycle was final) | recycled (recycled after)",
    "late_usage.routed_at": "when that cycle's mediation routed it (once, ever)",
    "recycled_records.previous_stage": "stage of the previous reason (parse, normalise, mediation, rating)",
    "recycled_records.previous_reason": "the suspense reason code the record was suspended for",
    "recycled_records.new_status": "ok | suspended | discarded (the fresh reading) | resubmitted (a mediation or "
    "rating reason: decided when the cycle is rebuilt; rated_usage and suspense say how)",
    "recycled_records.new_reason": "the fresh reading's suspense or discard reason, else null",
    "recycled_records.recycled_at": "when the latest recycle run resubmitted it",
    "bounces.bounce_id": "sha256 of the report and recipient (smtp:<Message-ID> for a refusal at sending)",
    "bounces.source": "the report's file in the bounce Maildir, or smtp",
    "bounces.recipient": "the bounced e-mail address",
    "bounces.matched_by": "message_id | recipient | none (how the report was matched to an invoice)",
    "bounces.action": "failed | delayed | delivered | relayed | expanded | refused (RFC 3464 Action)",
    "bounces.status": "RFC 3463 status code, e.g. 5.1.1",
    "bounces.kind": "hard (5.x.x) | soft (4.x.x) | success (2.x.x)",
    "bounces.diagnostic": "the remote server's diagnostic text",
    "bounces.reported_at": "the report's Arrival-Date or Date (else when it was read)",
    "delivery_preference_overrides.preference": "the preference that wins over accounts.delivery_preference (paper)",
    "delivery_preference_overrides.bounce_id": "the bounce that decided the switch",
    "delivery_preference_overrides.notice_file": "the notice PDF mailed to the account's postal address",
    "delivery_preference_overrides.since": "when the account was switched",
    "cycle_approvals.approval_no": "1, 2, … per cycle (a revoked approval stays; the next gets the next number)",
    "cycle_approvals.approved_at": "when the approval was recorded",
    "cycle_approvals.note": "the approver's note",
    "cycle_approvals.revoked_by": "who revoked it (only possible before any delivery)",
    "cycle_approvals.revoked_at": "when it was revoked",
    "cycle_approvals.revoke_note": "why it was revoked",
    "print_batch_items.document_id": "the invoice number, reminder id or NOTICE-<account>",
    "print_batch_items.kind": "invoice | reminder | notice",
    "print_batch_items.batch_id": "<cycle>-<nn>: the merged PDF and manifest that carry it",
    "print_batch_items.first_page": "its first page in the batch PDF",
    "print_batch_items.pages": "its pages in the batch (with a blank page added for duplex)",
    "print_batch_items.batched_at": "when the batch was recorded",
    "payment_reminders.reminder_id": "REM-<invoice_number>-<level>",
    "payment_reminders.level": "dunning level (settings dunning_levels: reminder, second_notice, …)",
    "payment_reminders.as_of": "the date the reminder was decided on",
    "payment_reminders.days_past_due": "days past the invoice's due date on as_of",
    "payment_reminders.past_due_amount": "the invoice's undisputed open amount on as_of",
    "payment_reminders.destination": "e-mail address, or the reminder PDF for paper",
    "payment_reminders.sent_at": "when it went out",
    "deliveries.attempts": "SMTP attempts made (retries with back-off)",
    "deliveries.last_error": "the last transient or permanent failure (password never shown)",
    "deliveries.transport": "maildir | smtp",
    "deliveries.destination": "e-mail address, or the print folder's PDF",
    "suspense_reasons.code": "suspense reason code",
    "quarantine_reasons.code": "quarantine reason code",
    "suspense_reasons.stage": "stage that uses the code (parse, normalise, mediation, rating)",
    "file_sequences.kind": "file (number in the file name) | pack (EMI pack header)",
    "tax_lines.kind": "tax category (government_tax, regulatory_fee, …)",
    "allowances.included_units": "units included each cycle",
    "account_id": "account key (ACC-…)",
    "effective_on": "first day of the new plan",
    "old_plan_id": "plan before the change",
    "new_plan_id": "plan after the change",
    "order_id": "order key",
    "charge_date": "date the charge applies",
    "charge_type": "activation | installation | reconnection | number_port | other",
    "timezone": "IANA time zone",
    "zone": "domestic | international | any",
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
    "answer_utc": "call answered, UTC (null: the source gave no answer time)",
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
        "`warehouse.duckdb` (in `CDRBILL_HOME`) is published as a new file after each run (built aside, keeping the "
        "large tables' parts that did not change, see `publication_parts`) and renamed over the old "
        'one: open it read-only (`duckdb.connect(path, read_only=True)` or `cdrbill sql "select …"`); an open '
        "connection keeps reading the warehouse it opened and never blocks a run. The tables below are the stable "
        "interface; preset reports (`sql/reports/`, `cdrbill report list`) read only these.",
        "",
        "This page is generated from a published warehouse (`python -m pipeline.warehouse_dictionary "
        "WAREHOUSE > docs/WAREHOUSE.md`); `tests/test_warehouse.py` fails when it differs from the "
        "sample cycle's warehouse.",
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
            note = note.replace("|", "\\|")  # "a | b" in a note is an alternative, not a new table cell
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
