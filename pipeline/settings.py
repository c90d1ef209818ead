"""Billing settings: the carrier's rules that are data, not code. Read from ``reference/settings.toml`` when
present; every key has a documented default."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
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
    # a landed file without a marker is taken once unchanged this long (0: at once; set it when transfers
    # write in place instead of under a .part/.tmp name then renaming); the landing sensor judges its own files
    landing_settle_seconds: int = 0
    duplicate_tolerance_seconds: int = 0  # > 0: the same call from two switches may differ this much in time
    # late usage (pipeline/late_usage.py): a call of a finalised cycle is billed in the next open cycle unless it
    # is older than this many days before that cycle's first day (then suspense LATE_USAGE_TOO_OLD)
    late_usage_max_age_days: int = 90
    # print batches and dunning (issue 6)
    print_duplex: bool = False  # printed on both sides: each document padded to an even page count
    # payment reminder levels: days past the due date → level (each sent once per invoice, ever)
    dunning_levels: dict[str, int] = field(
        default_factory=lambda: {"reminder": 15, "second_notice": 30, "suspension_notice": 45}
    )
    # documents (issue 6)
    itemisation_max_rows: int = 500  # a bill with more itemised rows gets them as a CSV attachment, not pages
    carrier_address_line1: str = "100 Main St"  # the seller's address on e-invoices (EN 16931 BG-5)
    carrier_city: str = "Chicago"
    carrier_state: str = "IL"
    carrier_postcode: str = "60601"
    # e-mail delivery (docs/DELIVERY.md): SMTP tries per message, the wait before the first retry (doubled
    # each retry), and the soft bounces in a row after which an account is switched to paper
    smtp_attempts: int = 3
    smtp_retry_delay_s: float = 2.0
    soft_bounce_limit: int = 3
    # mediation (sql/mediation*.sql, statement by statement) spills past this. At 10M CDRs in the realistic
    # mix (stop 26, 3 alternated rounds): 768MB 59–62 CPU s at a process peak of 998–1,043 MiB, 512MB 64–69 CPU
    # s at 996–1,080 MiB (its joins spill more), 1GB 57–61 CPU s but 1,219–1,228 MiB; docs/SCALE_LOG.md. At 50M
    # (stop 28) 2GB saved 3–10 % of the CPU for a 2.2 GiB peak; 1GB was not tried. (The stage's accounting check
    # then ran out of memory; it grouped every record by key and, at 50M, also failed at 768MB in 2 runs of 3.
    # Since stop 29 it compares bitmaps per file and block of lines: 2.6–2.7 CPU s, ~280 MiB at either limit)
    mediation_memory_limit: str = "768MB"
    # rating and rerating (rate shards, the collect / rerate step, `cdrbill rerate`) spill past this: at 10M
    # events with a 600,117-row deck 1GB peaks at 1,445 / 1,490 MiB of process RSS; 512MB at ~970 MiB for twice
    # the CPU; the shared 2GB would pass 1.5 GiB (docs/SCALE_LOG.md "The reference held once")
    rating_memory_limit: str = "1GB"
    # scale-out (issue 8, docs/SCALE_LOG.md "Scale-out"): rating, account charges and invoice documents fan
    # out over the cycle's market shards, one step each (1: one shard, today's behaviour); a shard is the
    # accounts whose md5(account_id) mod market_shards = k ("account_hash"), or the accounts of one service
    # state ("state")
    market_shards: int = 1
    market_by: str = "account_hash"
    # the lake on object storage (pipeline/lake.py ``ObjectLake``): "s3://bucket/prefix" moves the home's lake
    # there (CDRBILL_LAKE_URL overrides); empty: the local folder ``lake/``. Endpoint and credentials: AWS_*
    lake_url: str = ""
    # a superseded lake version is kept this long after its partition moved on ("90s", "30m", "1h", "2d"; "0":
    # deleted at once), so a reader that resolved the old pointer or link a moment before still reads it whole;
    # the next writer of the dataset and `cdrbill lake sweep` delete it after (pipeline/lake_upkeep.py)
    lake_version_grace: str = "1h"
    # the read cache of a lake on an object store (lake/.cache/) is trimmed to this, least recently used
    # versions first, never a current one nor one a process holds ("512MB", "20GB"; docs/SCALE_LOG.md)
    lake_cache_bytes: str = "20GB"


_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_BYTES = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30,
          "TIB": 2**40}  # fmt: skip


def duration_seconds(text: str) -> int:
    """Seconds of a duration setting: a whole number and a unit, ``90s``, ``30m``, ``1h``, ``2d``; ``0`` is none."""
    value = text.strip().lower()
    number, unit = (value, "s") if value.isdigit() else (value[:-1], value[-1:])
    if not number.isdigit() or unit not in _SECONDS:
        raise ValueError(f"duration {text!r}. Fix: a whole number and s, m, h or d, e.g. '1h' (or '0')")
    return int(number) * _SECONDS[unit]


def size_bytes(text: str) -> int:
    """Bytes of a size setting, as DuckDB writes them: ``512MB``, ``20GB`` (powers of 1000), ``4GiB`` (1024)."""
    value = text.strip().upper().replace(" ", "")
    unit = value.lstrip("0123456789")
    number = value[: len(value) - len(unit)]
    if not number or (unit or "B") not in _BYTES:
        raise ValueError(f"size {text!r}. Fix: a whole number and B, KB, MB, GB, TB (or KiB … TiB), e.g. '20GB'")
    return int(number) * _BYTES[unit or "B"]


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
    levels = settings.dunning_levels
    if (
        not levels
        or not all(isinstance(d, int) and d > 0 for d in levels.values())
        or len(set(levels.values())) < len(levels)
    ):
        raise ValueError(
            f"{path}: dunning_levels={levels!r}. Fix: a table of level = days past due, e.g. "
            "dunning_levels = {reminder = 15, second_notice = 30, suspension_notice = 45} (distinct positive days)"
        )
    if settings.smtp_attempts < 1 or settings.smtp_retry_delay_s < 0 or settings.soft_bounce_limit < 1:
        raise ValueError(
            f"{path}: smtp_attempts={settings.smtp_attempts}, smtp_retry_delay_s={settings.smtp_retry_delay_s}, "
            f"soft_bounce_limit={settings.soft_bounce_limit}. Fix: attempts and limit ≥ 1, delay ≥ 0"
        )
    if settings.market_shards < 1 or settings.market_by not in ("account_hash", "state"):
        raise ValueError(
            f"{path}: market_shards={settings.market_shards}, market_by={settings.market_by!r}. Fix: market_shards "
            "≥ 1 and market_by = 'account_hash' or 'state'"
        )
    if settings.late_usage_max_age_days < 0:
        raise ValueError(
            f"{path}: late_usage_max_age_days={settings.late_usage_max_age_days}. Fix: a number of days ≥ 0 "
            "(0 suspends all late usage)"
        )
    for name, parse in (("lake_version_grace", duration_seconds), ("lake_cache_bytes", size_bytes)):
        try:
            parse(getattr(settings, name))
        except ValueError as error:
            raise ValueError(f"{path}: {name}: {error}") from None
    return settings
