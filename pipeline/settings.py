"""Billing settings: the carrier's rules that are data, not code. Read from ``reference/settings.toml`` when
present; every key has a documented default."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """The carrier's billing rules."""

    carrier_name: str = "cdrbill Telecom"
    billing_questions_phone: str = "1-800-555-0100"
    billing_timezone: str = "America/Chicago"  # a call belongs to the cycle of its start in this zone
    invoice_series: str = "INV"  # gapless numbers INV-00000001, …
    payment_terms_days: int = 21  # due date = issue date + this …
    minimum_payment_days: int = 14  # … but never fewer days than this after the issue date
    credit_note_series: str = "CN"  # gapless credit note numbers CN-00000001, …
    late_fee_percent: str = "1.50"  # of the undisputed amount past due (a decimal string)
    late_fee_grace_days: int = 5  # days after the due date before a late fee applies
    zero_bill_policy: str = "send"  # send | suppress (recorded in suppressed_bills with reason ZERO_AMOUNT)
    sender_email: str = "billing@cdrbill.invalid"
    duckdb_memory_limit: str = "2GB"
    render_workers: int = 2
    duplicate_window_days: int = 90  # a call already billed this many days before is still found a duplicate
    billing_window_days: int = 180  # a call older than this before its file's cycle is too old to bill
    duplicate_tolerance_seconds: int = 0  # > 0: the same call from two switches may differ this much in start
    # mediation (intake's batches, sql/mediation.sql) spills past this: its peak stays ~1.3 GiB at 1M CDRs
    mediation_memory_limit: str = "1GB"


def load_settings(reference_dir: Path) -> Settings:
    """Defaults, overridden by ``settings.toml`` in the reference folder (unknown keys are an error)."""
    path = reference_dir / "settings.toml"
    if not path.exists():
        return Settings()
    values = tomllib.loads(path.read_text(encoding="utf-8"))
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path}: unknown settings {unknown}. Fix: use only {sorted(known)}")
    settings = replace(Settings(), **values)
    if settings.zero_bill_policy not in ("send", "suppress"):
        raise ValueError(f"{path}: zero_bill_policy={settings.zero_bill_policy!r}. Fix: use 'send' or 'suppress'")
    return settings
