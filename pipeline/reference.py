"""Reference data (accounts, service numbers, agents, plans, price books, rate cards, taxes, sources): read
from CSV with explicit types and validated before anything is rated. A bad table stops the run with an error
that names the file, the row and the fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl

from pipeline import sources

MONEY = pl.Decimal(18, 6)
US_STATES = frozenset(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND "
    "OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR".split()
)
ROUNDING_METHODS = frozenset({"half_up", "up", "down", "half_even"})

# column -> type: "str" (required text), "str?" (optional text), "date", "date?", "money", "int", "choice:a|b"
TABLES: dict[str, dict[str, str]] = {
    "sources": {
        "source_id": "str",
        "format": "choice:asterisk_csv|freeswitch_csv|cucm_cdr|broadworks_csv|emi_duf",
        "timezone": "str",
        "default_region": "choice:US",
    },
    "agents": {"agent_id": "str", "agent_name": "str", "commission_percent": "money"},
    "plans": {"plan_id": "str", "plan_name": "str", "monthly_charge": "money", "currency": "choice:USD"},
    "accounts": {
        "account_id": "str",
        "account_name": "str",
        "account_type": "choice:residential|business",
        "billing_address_line1": "str",
        "billing_city": "str",
        "billing_state": "state",
        "billing_zip": "str",
        "service_state": "state",
        "agent_id": "str",
        "plan_id": "str",
        "currency": "choice:USD",
        "language": "choice:en|es",
        "delivery_preference": "choice:email|paper",
        "email": "str?",
        "activated_on": "date",
        "deactivated_on": "date?",
    },
    "service_numbers": {
        "service_number": "e164",
        "account_id": "str",
        "service_state": "state",
        "valid_from": "date",
        "valid_to": "date?",
    },
    "price_books": {
        "price_book_id": "str",
        "agent_id": "str?",
        "plan_id": "str",
        "state": "state?",
        "rate_card_id": "str",
        "valid_from": "date",
        "valid_to": "date?",
    },
    "rate_cards": {
        "rate_card_id": "str",
        "prefix": "digits",
        "destination": "str",
        "rate_per_unit": "money",
        "unit_seconds": "int",
        "first_increment_seconds": "int",
        "increment_seconds": "int",
        "connect_fee": "money",
        "minimum_charge": "money",
        "rounding_method": "choice:half_up|up|down|half_even",
        "rounding_decimals": "int",
    },
    "taxes": {
        "tax_code": "str",
        "tax_name": "str",
        "authority": "str",
        "level": "choice:federal|state|local",
        "state": "state?",
        "kind": "choice:government_tax|regulatory_fee|recovery_fee",
        "method": "choice:percent|per_line",
        "rate_percent": "money?",
        "per_line_amount": "money?",
        "base": "str",
        "percent_taxable": "money",
        "taxes_on": "str?",
        "discounts_reduce_base": "choice:yes|no",
        "lifeline_exempt": "choice:yes|no",
        "rounding_method": "choice:half_up|up|down|half_even",
        "valid_from": "date",
        "valid_to": "date?",
    },
    # --- bill run (issue 5): products, orders, equipment, discounts, exemptions, balances, commissions ---
    "products": {
        "product_id": "str",
        "product_name": "str",
        "product_type": "choice:addon|feature|line|equipment_lease",
        "monthly_charge": "money",
        "billed": "choice:advance|arrears",
        "provider": "str",
    },
    "subscriptions": {
        "subscription_id": "str",
        "account_id": "str",
        "product_id": "str",
        "service_number": "str?",
        "quantity": "int",
        "valid_from": "date",
        "valid_to": "date?",
    },
    "plan_changes": {
        "account_id": "str",
        "effective_on": "date",
        "old_plan_id": "str",
        "new_plan_id": "str",
    },
    "orders": {
        "order_id": "str",
        "account_id": "str",
        "charge_date": "date",
        "charge_type": "choice:activation|installation|reconnection|number_port|other",
        "description": "str",
        "amount": "money",
        "service_number": "str?",
    },
    "equipment": {
        "serial_number": "str",
        "account_id": "str",
        "model": "str",
        "ownership": "choice:sale|lease",
        "price": "money",
        "valid_from": "date",
        "valid_to": "date?",
    },
    "discounts": {
        "discount_id": "str",
        "account_id": "str?",
        "description": "str",
        "method": "choice:percent|amount",
        "value": "money",
        "scope": "choice:plan|product|usage|bill",
        "target": "str?",
        "min_tenure_months": "int?",
        "max_cycles": "int?",
        "valid_from": "date",
        "valid_to": "date?",
    },
    "tax_exemptions": {
        "account_id": "str",
        "tax_code": "str",
        "exemption": "choice:certificate|lifeline",
        "certificate_id": "str?",
        "valid_from": "date",
        "valid_to": "date?",
    },
    "adjustments": {
        "adjustment_id": "str",
        "account_id": "str",
        "direction": "choice:credit|debit",
        "amount": "money",
        "reason": "str",
        "approved_by": "str",
        "effective_date": "date",
    },
    "payments": {
        "payment_id": "str",
        "account_id": "str",
        "received_on": "date",
        "amount": "money",
        "method": "choice:ach|card|check|cash",
        "reference": "str?",
    },
    "disputes": {
        "dispute_id": "str",
        "account_id": "str",
        "invoice_number": "str",
        "amount": "money",
        "reason": "str",
        "opened_on": "date",
        "resolved_on": "date?",
        "credit_granted": "money?",
        "approved_by": "str?",
    },
    "commission_plans": {
        "commission_plan_id": "str",
        "agent_id": "str",
        "plan_id": "str?",
        "state": "state?",
        "basis": "choice:billed|collected",
        "percent": "money",
        "valid_from": "date",
        "valid_to": "date?",
    },
}
KEYS: dict[str, tuple[str, ...]] = {
    "sources": ("source_id",),
    "agents": ("agent_id",),
    "plans": ("plan_id",),
    "accounts": ("account_id",),
    "service_numbers": ("service_number", "valid_from"),
    "price_books": ("price_book_id",),
    "rate_cards": ("rate_card_id", "prefix"),
    "taxes": ("tax_code", "valid_from"),
    # --- bill run (issue 5) ---
    "products": ("product_id",),
    "subscriptions": ("subscription_id",),
    "plan_changes": ("account_id", "effective_on"),
    "orders": ("order_id",),
    "equipment": ("serial_number",),
    "discounts": ("discount_id",),
    "tax_exemptions": ("account_id", "tax_code", "valid_from"),
    "adjustments": ("adjustment_id",),
    "payments": ("payment_id",),
    "disputes": ("dispute_id",),
    "commission_plans": ("commission_plan_id",),
}


class ReferenceDataError(ValueError):
    """A reference table that cannot be used; the message names the file, the row and the fix."""

    def __init__(self, file: Path, row: int | None, problem: str, fix: str) -> None:
        where = f"{file}" + (f", row {row}" if row is not None else "")
        super().__init__(f"{where}: {problem}. Fix: {fix}")


class Reference:
    """All reference tables of a run, typed and validated; each table is an attribute (``reference.accounts``)."""

    def __init__(self, frames: dict[str, pl.DataFrame]) -> None:
        self._frames = dict(frames)

    def __getattr__(self, name: str) -> pl.DataFrame:
        try:
            return self.__dict__["_frames"][name]
        except KeyError:
            raise AttributeError(name) from None

    def tables(self) -> dict[str, pl.DataFrame]:
        """Name → frame, for registering in DuckDB."""
        return dict(self._frames)


def _read_sources(folder: Path) -> pl.DataFrame:
    """Sources: one TOML file each in ``sources/`` (``pipeline.sources``); a legacy ``sources.csv`` (the
    ``TABLES`` columns) is still read when that folder does not exist, its other settings left empty."""
    if (folder / "sources").is_dir():
        return sources.load_sources(folder / "sources")
    legacy = _read_table(folder / "sources.csv", TABLES["sources"])
    return legacy.with_columns(landing=pl.col("source_id")).select(
        [(pl.col(c) if c in legacy.columns or c == "landing" else pl.lit(None)).cast(pl.String).alias(c)
         for c in sources.COLUMNS]
    )  # fmt: skip


# tables not read from one CSV: name -> reader of the reference folder
READERS: dict[str, Callable[[Path], pl.DataFrame]] = {"sources": _read_sources}


def load_reference(folder: Path) -> Reference:
    """Read and validate every reference table in ``folder`` (one ``<table>.csv`` each, sources apart)."""
    frames = {
        name: READERS[name](folder) if name in READERS else _read_table(folder / f"{name}.csv", spec)
        for name, spec in TABLES.items()
    }
    for name, key in KEYS.items():
        _check_unique(folder / f"{name}.csv", frames[name], key)
    _check_foreign(folder, frames, "accounts", "agent_id", "agents")
    _check_foreign(folder, frames, "accounts", "plan_id", "plans")
    _check_foreign(folder, frames, "service_numbers", "account_id", "accounts")
    _check_foreign(folder, frames, "price_books", "plan_id", "plans")
    _check_foreign(folder, frames, "price_books", "rate_card_id", "rate_cards")
    _check_periods(folder / "service_numbers.csv", frames["service_numbers"], "service_number")
    _check_rates(folder / "rate_cards.csv", frames["rate_cards"])
    # --- bill run (issue 5) ---
    for table in ("subscriptions", "plan_changes", "orders", "equipment", "tax_exemptions", "adjustments",
                  "payments", "disputes"):  # fmt: skip
        _check_foreign(folder, frames, table, "account_id", "accounts")
    _check_foreign(folder, frames, "subscriptions", "product_id", "products")
    _check_foreign(folder, frames, "discounts", "account_id", "accounts")
    _check_foreign(folder, frames, "commission_plans", "agent_id", "agents")
    _check_foreign(folder, frames, "commission_plans", "plan_id", "plans")
    _check_plan_changes(folder / "plan_changes.csv", frames["plan_changes"], frames["accounts"])
    _check_taxes(folder / "taxes.csv", frames["taxes"])
    return Reference(frames)


def _read_table(path: Path, spec: dict[str, str]) -> pl.DataFrame:
    if not path.exists():
        raise ReferenceDataError(
            path, None, "file is missing", f"provide {path.name} (see data_samples/README.md)"
        )
    text = pl.read_csv(path, infer_schema=False)
    missing = [c for c in spec if c not in text.columns]
    if missing:
        raise ReferenceDataError(path, None, f"columns {missing} are missing", "add them to the header row")
    text = text.select(list(spec)).with_row_index("_row", offset=2)  # row 1 is the header
    return text.select([_typed(path, text, column, kind) for column, kind in spec.items()])


def _typed(path: Path, text: pl.DataFrame, column: str, kind: str) -> pl.Series:
    """Cast one text column to its declared type; the first bad value raises with its row number."""
    raw = text[column].str.strip_chars()
    optional = kind.endswith("?")
    kind = kind.rstrip("?")
    empty = raw.is_null() | (raw == "")
    if kind.startswith("choice:"):
        allowed = kind.split(":", 1)[1].split("|")
        bad = ~raw.is_in(allowed)
        expected = f"one of {allowed}"
        value = raw
    elif kind in ("str", "state", "e164", "digits"):
        pattern = {
            "str": r".",
            "state": r"^[A-Z]{2}$",
            "e164": r"^\+[1-9]\d{6,14}$",
            "digits": r"^\d{1,15}$",
        }[kind]
        bad = ~raw.str.contains(pattern) | (raw.is_in(list(US_STATES)).not_() if kind == "state" else False)
        expected = {
            "str": "a value",
            "state": "a two-letter US state code",
            "e164": "an E.164 number like +13125550100",
            "digits": "digits only",
        }[kind]
        value = raw
    elif kind == "date":
        value = raw.str.to_date("%Y-%m-%d", strict=False)
        bad = value.is_null()
        expected = "a date YYYY-MM-DD"
    elif kind == "money":
        value = raw.cast(MONEY, strict=False)
        bad = ~raw.str.contains(r"^\d+(\.\d{1,6})?$") | value.is_null()
        expected = "a non-negative decimal with at most 6 decimals, e.g. 19.99"
    elif kind == "int":
        value = raw.cast(pl.Int64, strict=False)
        bad = value.is_null() | (value < 0)
        expected = "a whole number >= 0"
    else:  # pragma: no cover - a programming error in TABLES
        raise AssertionError(kind)
    bad = (bad & ~empty) | (empty & (not optional))
    if bad.any():
        index = bad.arg_true()[0]
        raise ReferenceDataError(
            path,
            int(text["_row"][index]),
            f"{column}={raw[index]!r} is not {expected}",
            f"correct {column} in that row",
        )
    return value.alias(column).set(empty, None) if optional else value.alias(column)


def _check_unique(path: Path, frame: pl.DataFrame, key: tuple[str, ...]) -> None:
    dup = frame.with_row_index("_row", offset=2).filter(~pl.struct(list(key)).is_first_distinct())
    if dup.height:
        row = dup.row(0, named=True)
        raise ReferenceDataError(
            path,
            row["_row"],
            f"duplicate key {tuple(row[k] for k in key)}",
            f"keep one row per {', '.join(key)}",
        )


def _check_foreign(
    folder: Path, frames: dict[str, pl.DataFrame], table: str, column: str, target: str
) -> None:
    known = frames[target][column]
    rows = frames[table].with_row_index("_row", offset=2)
    bad = rows.filter(pl.col(column).is_not_null() & ~pl.col(column).is_in(known.implode()))
    if bad.height:
        row = bad.row(0, named=True)
        raise ReferenceDataError(
            folder / f"{table}.csv",
            row["_row"],
            f"{column}={row[column]!r} is not in {target}.csv",
            f"add it to {target}.csv or correct the value",
        )


def _check_periods(path: Path, frame: pl.DataFrame, key: str) -> None:
    """Effective-dated rows: valid_from before valid_to, and no two periods of one key overlap."""
    rows = frame.with_row_index("_row", offset=2)
    backwards = rows.filter(pl.col("valid_to").is_not_null() & (pl.col("valid_to") <= pl.col("valid_from")))
    if backwards.height:
        raise ReferenceDataError(
            path,
            backwards["_row"][0],
            "valid_to is not after valid_from",
            "set valid_to after valid_from, or leave it empty for an open period",
        )
    ordered = rows.sort(key, "valid_from").with_columns(next_from=pl.col("valid_from").shift(-1).over(key))
    overlap = ordered.filter(
        pl.col("next_from").is_not_null()
        & (pl.col("valid_to").is_null() | (pl.col("valid_to") > pl.col("next_from")))
    )
    if overlap.height:
        row = overlap.row(0, named=True)
        raise ReferenceDataError(
            path,
            row["_row"],
            f"{row[key]} has overlapping validity periods",
            "end the earlier period on or before the day the next one starts",
        )


def _check_rates(path: Path, frame: pl.DataFrame) -> None:
    rows = frame.with_row_index("_row", offset=2)
    bad = rows.filter(
        (pl.col("unit_seconds") == 0) | (pl.col("increment_seconds") == 0) | (pl.col("rounding_decimals") > 6)
    )
    if bad.height:
        raise ReferenceDataError(
            path,
            bad["_row"][0],
            "unit_seconds and increment_seconds must be > 0 and rounding_decimals at most 6",
            "correct the rate row",
        )


# --- bill run (issue 5) ---
def _check_plan_changes(path: Path, changes: pl.DataFrame, accounts: pl.DataFrame) -> None:
    """A plan change names known plans, and an account's last change lands on its current plan."""
    rows = changes.with_row_index("_row", offset=2).sort("account_id", "effective_on")
    last = rows.group_by("account_id").last().join(accounts.select("account_id", "plan_id"), on="account_id")
    wrong = last.filter(pl.col("new_plan_id") != pl.col("plan_id"))
    if wrong.height:
        row = wrong.row(0, named=True)
        raise ReferenceDataError(
            path,
            row["_row"],
            f"the last plan change of {row['account_id']} is to {row['new_plan_id']} but accounts.csv says "
            f"{row['plan_id']}",
            "make accounts.plan_id the plan of the latest change",
        )


def _check_taxes(path: Path, taxes: pl.DataFrame) -> None:
    """Each tax has the amount its method needs, a state unless federal, a known base, and taxes it is levied
    on that exist without a cycle (the dependency order is computable)."""
    from pipeline.taxes import BASE_TOKENS, TaxOrderError, tax_levels

    rows = taxes.with_row_index("_row", offset=2)
    problems = [
        (pl.col("method") == "percent") & pl.col("rate_percent").is_null(),
        (pl.col("method") == "per_line") & pl.col("per_line_amount").is_null(),
        (pl.col("level") == "federal") & pl.col("state").is_not_null(),
        (pl.col("level") != "federal") & pl.col("state").is_null(),
    ]
    fixes = [
        "give rate_percent for a percent tax",
        "give per_line_amount for a per-line fee",
        "leave state empty for a federal tax",
        "give the state of a state or local tax",
    ]
    for problem, fix in zip(problems, fixes, strict=True):
        bad = rows.filter(problem)
        if bad.height:
            raise ReferenceDataError(path, bad["_row"][0], f"tax {bad['tax_code'][0]} is incomplete", fix)
    for row in rows.iter_rows(named=True):
        unknown = [t for t in row["base"].split("|") if t.split("_")[0] not in BASE_TOKENS]
        if unknown:
            raise ReferenceDataError(
                path, row["_row"], f"base {unknown} is not a charge category", f"use {sorted(BASE_TOKENS)}"
            )
    try:
        tax_levels(taxes)
    except TaxOrderError as error:
        raise ReferenceDataError(
            path, None, str(error), "name only existing taxes in taxes_on, without cycles"
        ) from None
