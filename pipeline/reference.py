"""Reference data (accounts, service numbers, agents, plans, price books, rate cards, taxes, sources): read
from CSV with explicit types and validated before anything is rated. A bad table stops the run with an error
that names the file, the row and the fix."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path

import polars as pl

from pipeline import sources
from pipeline.currencies import MAX_MINOR_UNITS, currency_codes, minor_units

MONEY = pl.Decimal(18, 6)
US_STATES = frozenset(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND "
    "OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR".split()
)
ROUNDING_METHODS = frozenset({"half_up", "up", "down", "half_even"})

# column -> type: "str" (required text), "str?" (optional text), "date", "date?", "money", "int", "choice:a|b",
# "currency" (an ISO 4217 code with at most 3 minor units). An optional column may be absent from the file
# (read as empty): columns added later keep older reference folders loading.
TABLES: dict[str, dict[str, str]] = {
    "sources": {
        "source_id": "str",
        "format": "choice:asterisk_csv|freeswitch_csv|cucm_cdr|broadworks_csv|emi_duf",
        "timezone": "str",
        "default_region": "choice:US",
    },
    "agents": {"agent_id": "str", "agent_name": "str", "commission_percent": "money"},
    "plans": {"plan_id": "str", "plan_name": "str", "monthly_charge": "money", "currency": "currency"},
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
        "currency": "currency",
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
        "service": "choice:voice|sms|mms|data|vas?",
        "rate_card_id": "str",
        "valid_from": "date",
        "valid_to": "date?",
        "currency": "currency?",  # empty: its plan's currency
    },
    "rate_cards": {
        "rate_card_id": "str",
        "prefix": "digits?",
        "jurisdiction": "choice:local|intrastate|interstate|international|toll_free|premium|n11?",
        "from_second": "int",
        "destination": "str",
        "rate_per_unit": "money",
        "unit_seconds": "int",
        "first_increment_seconds": "int",
        "increment_seconds": "int",
        "connect_fee": "money",
        "minimum_charge": "money",
        "maximum_charge": "money?",
        "rounding_method": "choice:half_up|up|down|half_even",
        "rounding_decimals": "int",
        "time_band": "str?",
        "event_code": "str?",
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
    # rating (issue 4): the NANP numbering plan sample for jurisdiction
    "npa_nxx": {"npa": "digits", "nxx": "digits?", "country": "str", "state": "state?", "local_area": "str?"},
    "state_time_zones": {"state": "state", "timezone": "str"},
    "time_bands": {
        "band_set": "str",
        "day_type": "choice:weekday|weekend|holiday",
        "start_time": "str",
        "end_time": "str",
        "time_band": "str",
    },
    "rate_card_policies": {
        "rate_card_id": "str",
        "band_set": "str?",
        "band_policy": "choice:split|start",
        "holidays": "choice:state|federal|none",
    },
    "plan_usage_settings": {
        "plan_id": "str",
        "sms_charging": "choice:message|segment",
        "data_rounding": "choice:session|cycle|none",
        "data_unit": "choice:byte|KB|MB",
    },
    "allowances": {
        "allowance_id": "str",
        "plan_id": "str",
        "service": "choice:voice|sms|mms|data|vas",
        "zone": "choice:any|domestic|international",
        "included_units": "int",
    },
    "tiers": {
        "tier_id": "str",
        "plan_id": "str",
        "service": "choice:voice|sms|mms|data|vas",
        "mode": "choice:graduated|volume",
        "from_units": "int",
        "price_per_unit": "money",
    },
    "roaming_zones": {"country": "str", "zone": "str"},
    "roaming_surcharges": {"rate_card_id": "str", "zone": "str", "surcharge_per_unit": "money"},
    # documents (issue 6): per-account document preferences; an account without a row gets the defaults
    # (full itemisation, called numbers shown, no e-invoice). The file itself is optional.
    "document_preferences": {
        "account_id": "str",
        "itemisation": "choice:full|summary|csv?",
        "mask_called_numbers": "choice:yes|no?",
        "einvoice": "choice:none|facturx?",
    },
    # mediation (issue 3): the dialled codes that make a switch's voice record a value-added event, e.g. 411
    # (directory assistance) or the vertical service code *69 (call return), each billed per use under its
    # event code. The number as normalisation writes it ('411', '*69', '+18005551212'). The file is optional.
    "service_codes": {
        "called_number": "str",
        "service": "choice:vas",
        "event_code": "str",
        "description": "str?",
    },
}
KEYS: dict[str, tuple[str, ...]] = {
    "sources": ("source_id",),
    "agents": ("agent_id",),
    "plans": ("plan_id",),
    "accounts": ("account_id",),
    "service_numbers": ("service_number", "valid_from"),
    "price_books": ("price_book_id",),
    "rate_cards": ("rate_card_id", "prefix", "jurisdiction", "event_code", "time_band", "from_second"),
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
    # rating (issue 4)
    "npa_nxx": ("npa", "nxx"),
    "state_time_zones": ("state",),
    "time_bands": ("band_set", "day_type", "start_time"),
    "rate_card_policies": ("rate_card_id",),
    "plan_usage_settings": ("plan_id",),
    "allowances": ("allowance_id",),
    "tiers": ("tier_id", "from_units"),
    "roaming_zones": ("country",),
    "roaming_surcharges": ("rate_card_id", "zone"),
    # documents (issue 6)
    "document_preferences": ("account_id",),
    # mediation (issue 3)
    "service_codes": ("called_number",),
}


class ReferenceDataError(ValueError):
    """A reference table that cannot be used; the message names the file, the row and the fix."""

    def __init__(self, file: Path, row: int | None, problem: str, fix: str) -> None:
        where = f"{file}" + (f", row {row}" if row is not None else "")
        super().__init__(f"{where}: {problem}. Fix: {fix}")
        self.file, self.row, self.problem, self.fix = file, row, problem, fix


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
def _read_optional(name: str) -> Callable[[Path], pl.DataFrame]:
    """Reader of a table whose file may be absent (read as empty: reference folders older than it load)."""

    def read(folder: Path) -> pl.DataFrame:
        path = folder / f"{name}.csv"
        if path.exists():
            return _read_table(path, TABLES[name])
        return pl.DataFrame(schema={column: pl.String for column in TABLES[name]})

    return read


READERS: dict[str, Callable[[Path], pl.DataFrame]] = {
    "sources": _read_sources,
    # documents (issue 6)
    "document_preferences": _read_optional("document_preferences"),
    # mediation (issue 3)
    "service_codes": _read_optional("service_codes"),
}


def _read_frames(folder: Path, names: Iterable[str]) -> dict[str, pl.DataFrame]:
    return {
        name: READERS[name](folder) if name in READERS else _read_table(folder / f"{name}.csv", TABLES[name])
        for name in names
    }


def _check_service_numbers(folder: Path, frames: dict[str, pl.DataFrame]) -> None:
    """Every service number's account is known and a number's validity periods never overlap (the account that
    held a number at the call time is the one billed)."""
    _check_foreign(folder, frames, "service_numbers", "account_id", "accounts")
    _check_periods(folder / "service_numbers.csv", frames["service_numbers"], "service_number")


def load_reference(folder: Path) -> Reference:
    """Read and validate every reference table in ``folder`` (one ``<table>.csv`` each, sources apart)."""
    frames = _read_frames(folder, TABLES)
    for name, key in KEYS.items():
        _check_unique(folder / f"{name}.csv", frames[name], key)
    _check_foreign(folder, frames, "accounts", "agent_id", "agents")
    _check_foreign(folder, frames, "accounts", "plan_id", "plans")
    _check_service_numbers(folder, frames)
    _check_foreign(folder, frames, "price_books", "plan_id", "plans")
    _check_foreign(folder, frames, "price_books", "rate_card_id", "rate_cards")
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
    # rating (issue 4)
    _check_price_book_ambiguity(folder / "price_books.csv", frames["price_books"])
    _check_rate_steps(folder / "rate_cards.csv", frames["rate_cards"])
    _check_foreign(folder, frames, "rate_card_policies", "rate_card_id", "rate_cards")
    _check_time_zones(folder / "state_time_zones.csv", frames["state_time_zones"])
    _check_time_bands(folder / "time_bands.csv", frames["time_bands"])
    _check_band_sets(folder, frames)
    _check_foreign(folder, frames, "plan_usage_settings", "plan_id", "plans")
    _check_foreign(folder, frames, "allowances", "plan_id", "plans")
    _check_unique(folder / "allowances.csv", frames["allowances"], ("plan_id", "service", "zone"))
    _check_foreign(folder, frames, "tiers", "plan_id", "plans")
    _check_tiers(folder / "tiers.csv", frames["tiers"])
    _check_foreign(folder, frames, "roaming_surcharges", "rate_card_id", "rate_cards")
    _check_foreign(folder, frames, "roaming_surcharges", "zone", "roaming_zones")
    # --- currency per account (issue 5) ---
    _check_currencies(folder, frames)
    # hostile input (issue 9)
    _check_periods(folder / "taxes.csv", frames["taxes"], "tax_code")
    _check_priced_plans(folder, frames)
    # documents (issue 6)
    _check_foreign(folder, frames, "document_preferences", "account_id", "accounts")
    return Reference(frames)


def _read_table(path: Path, spec: dict[str, str]) -> pl.DataFrame:
    if not path.exists():
        raise ReferenceDataError(
            path, None, "file is missing", f"provide {path.name} (see data_samples/README.md)"
        )
    text = pl.read_csv(path, infer_schema=False)
    missing = [c for c in spec if c not in text.columns and not spec[c].endswith("?")]
    if missing:
        raise ReferenceDataError(path, 1, f"columns {missing} are missing", "add them to the header row")
    absent = [pl.lit(None, pl.String).alias(c) for c in spec if c not in text.columns]
    text = text.with_columns(absent).select(list(spec)).with_row_index("_row", offset=2)  # row 1: the header
    return text.select([_typed(path, text, column, kind) for column, kind in spec.items()])


def _typed(path: Path, text: pl.DataFrame, column: str, kind: str) -> pl.Series:
    """Cast one text column to its declared type; the first bad value raises with its row number. A money
    column that repeats its amounts (a deck's rates and fees) is judged once per distinct text, each row then
    taking its text's value: the same values and errors for half the work (the pattern and the decimal cast)."""
    texts = text[column]
    many = kind.startswith("money") and texts.len() >= 4096  # a small table: each row once costs less
    distinct = texts.drop_nulls().unique() if many else texts
    if distinct.len() * 4 > texts.len():
        value, bad, raw, expected = _judged(texts, kind)
        first_bad = bad.arg_true()
        row_text = raw
    else:
        # the rows' numbers in ``distinct``; an empty cell (null) is the number after the last text
        number = texts.cast(pl.Enum(distinct)).to_physical().cast(pl.UInt32).fill_null(distinct.len())
        value, bad, raw, expected = _judged(distinct.append(pl.Series([None], dtype=pl.String)), kind)
        first_bad = bad.gather(number).arg_true() if bad.any() else bad.clear()
        value = value.gather(number)
        row_text = raw.gather(number) if first_bad.len() else raw
    if first_bad.len():
        index = first_bad[0]
        raise ReferenceDataError(
            path,
            int(text["_row"][index]),
            f"{column}={row_text[index]!r} is not {expected}",
            f"correct {column} in that row",
        )
    return value.alias(column)


def _judged(texts: pl.Series, kind: str) -> tuple[pl.Series, pl.Series, pl.Series, str]:
    """Each text stripped and cast to ``kind``: the values (empty ones null), whether each is bad (a value that
    is not of the kind, or empty where the column is required), the stripped texts, and what was expected."""
    raw = texts.str.strip_chars()
    optional = kind.endswith("?")
    kind = kind.rstrip("?")
    empty = raw.is_null() | (raw == "")
    if kind.startswith("choice:"):
        allowed = kind.split(":", 1)[1].split("|")
        bad = ~raw.is_in(allowed)
        expected = f"one of {allowed}"
        value = raw
    elif kind == "currency":
        known = [c for c in currency_codes() if minor_units(c) <= MAX_MINOR_UNITS]
        bad = ~raw.is_in(known)
        expected = f"an ISO 4217 currency code with at most {MAX_MINOR_UNITS} minor units, e.g. USD"
        value = raw
    elif kind == "str":  # any value once stripped: only an empty one is bad
        bad = pl.repeat(False, raw.len(), eager=True)
        expected = "a value"
        value = raw
    elif kind in ("state", "e164", "digits"):
        pattern = {
            "state": r"^[A-Z]{2}$",
            "e164": r"^\+[1-9]\d{6,14}$",
            "digits": r"^\d{1,15}$",
        }[kind]
        bad = ~raw.str.contains(pattern) | (raw.is_in(list(US_STATES)).not_() if kind == "state" else False)
        expected = {
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
    return (value.set(empty, None) if optional else value), bad.fill_null(False), raw, expected


def _check_unique(path: Path, frame: pl.DataFrame, key: tuple[str, ...]) -> None:
    first = frame[key[0]] if len(key) == 1 else key_codes(frame, key)
    dup = frame.with_row_index("_row", offset=2).filter(~first.is_first_distinct())
    if dup.height:
        row = dup.row(0, named=True)
        raise ReferenceDataError(
            path,
            row["_row"],
            f"duplicate key {tuple(row[k] for k in key)}",
            f"keep one row per {', '.join(key)}",
        )


def column_codes(frame: pl.DataFrame, columns: Iterable[str]) -> list[tuple[pl.Series, int]]:
    """Each column's distinct values numbered from 1 (0 for empty), with the count of numbers used (the radix):
    text through an ``Enum`` of its values, numbers and dates by their dense rank."""
    codes: list[tuple[pl.Series, int]] = []
    for column in columns:
        series = frame[column]
        if series.dtype == pl.String:
            values = series.drop_nulls().unique()
            code = series.cast(pl.Enum(values)).to_physical().cast(pl.Int64) + 1
            codes.append((code.fill_null(0), values.len() + 1))
        else:
            code = series.rank("dense").cast(pl.Int64).fill_null(0)
            codes.append((code, code.len() + 1))  # a dense rank is at most the row count
    return codes


def key_codes(frame: pl.DataFrame, columns: Iterable[str]) -> pl.Series:
    """One integer per row, equal exactly for rows with equal values in ``columns`` (two empty values are
    equal): the columns' numbers (``column_codes``) combined in mixed radix, or ranked together when the
    product of their radixes would not fit in 62 bits. Grouping and sorting on it is far cheaper than on
    several text columns."""
    return combined_codes(column_codes(frame, columns), frame.height)


def combined_codes(codes: list[tuple[pl.Series, int]], height: int) -> pl.Series:
    """``key_codes`` of columns already numbered by ``column_codes``."""
    if math.prod(radix for _, radix in codes) < 2**62:
        key = pl.zeros(height, pl.Int64, eager=True)
        for code, radix in codes:
            key = key * radix + code
        return key
    struct = pl.DataFrame({str(i): code for i, (code, _) in enumerate(codes)}).select(pl.struct(pl.all()))
    return struct.to_series().rank("dense").cast(pl.Int64)


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
    ordered = rows.sort(key, "valid_from").with_columns(
        next_from=pl.when(pl.col(key) == pl.col(key).shift(-1)).then(pl.col("valid_from").shift(-1))
    )
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
    tokens = rows.select("_row", token=pl.col("base").str.split("|")).explode("token")
    unknown = tokens.filter(~pl.col("token").str.split("_").list.first().is_in(sorted(BASE_TOKENS)))
    if unknown.height:
        row_no = unknown["_row"][0]
        raise ReferenceDataError(
            path,
            row_no,
            f"base {unknown.filter(pl.col('_row') == row_no)['token'].to_list()} is not a charge category",
            f"use {sorted(BASE_TOKENS)}",
        )
    try:
        tax_levels(taxes)
    except TaxOrderError as error:
        raise ReferenceDataError(
            path, None, str(error), "name only existing taxes in taxes_on, without cycles"
        ) from None


# rating (issue 4) -------------------------------------------------------------------------------------------

PRICE_BOOK_SCOPE = ("agent_id", "plan_id", "state", "service")
RATE_KEY = ("rate_card_id", "prefix", "jurisdiction", "event_code")
BAND_KEY = (*RATE_KEY, "time_band")
DESTINATION_COLUMNS = (
    "destination",
    "unit_seconds",
    "connect_fee",
    "minimum_charge",
    "maximum_charge",
    "rounding_method",
    "rounding_decimals",
)


def _check_price_book_ambiguity(path: Path, frame: pl.DataFrame) -> None:
    """Two price books with the same scope (agent, plan, state, service) valid on the same day would match the
    same events equally specifically: refused, so the fallback order always names exactly one book."""
    rows = frame.with_row_index("_row", offset=2).sort(*PRICE_BOOK_SCOPE, "valid_from", nulls_last=True)
    rows = rows.with_columns(
        next_from=pl.col("valid_from").shift(-1).over(PRICE_BOOK_SCOPE),
        next_id=pl.col("price_book_id").shift(-1).over(PRICE_BOOK_SCOPE),
        next_row=pl.col("_row").shift(-1).over(PRICE_BOOK_SCOPE),
    )
    clash = rows.filter(
        pl.col("next_from").is_not_null()
        & (pl.col("valid_to").is_null() | (pl.col("valid_to") > pl.col("next_from")))
    )
    if clash.height:
        row = clash.row(0, named=True)
        raise ReferenceDataError(
            path,
            row["next_row"],
            f"price book {row['next_id']} has the same agent, plan, state and service as {row['price_book_id']} "
            f"(row {row['_row']}) for overlapping dates, so neither is more specific",
            "end one book's validity before the other starts, or narrow one by agent, state or service",
        )


def _check_rate_steps(path: Path, frame: pl.DataFrame) -> None:
    """Rate rows of one destination (rate card, prefix, jurisdiction) are steps of one call: a step from second 0
    exists, the destination columns (name, unit, fees, limits, rounding) are the same on every step, and a
    step that another follows is billed in whole increments (its length = first increment + k increments).

    The destinations and their time bands are integer codes (``key_codes``) and the deck is sorted once by them
    and ``from_second``: each rule compares a row with its neighbour (or with the same step of the band before)
    instead of grouping 600,000 rows by five text columns. Only a broken deck pays for naming its row."""
    rows = frame.with_row_index("_row", offset=2)
    codes = column_codes(rows, BAND_KEY)  # RATE_KEY, then time_band
    steps = (
        rows.select("_row", "from_second", "first_increment_seconds", "increment_seconds")
        .with_columns(
            _dest=combined_codes(codes[: len(RATE_KEY)], rows.height),
            _band=combined_codes(codes, rows.height),
            _values=key_codes(rows, DESTINATION_COLUMNS),
        )
        .sort("_dest", "_band", "from_second")
        .with_columns(
            _new_dest=pl.col("_dest").ne_missing(pl.col("_dest").shift(1)),
            _new_band=pl.col("_band").ne_missing(pl.col("_band").shift(1)),
        )
    )
    # the steps of one destination differ in a destination column: a step unlike the step before it
    unequal = steps.filter(~pl.col("_new_dest") & (pl.col("_values") != pl.col("_values").shift(1)))
    if unequal.height:
        raise ReferenceDataError(
            path,
            _first_row(steps, "_dest", unequal),
            f"the steps of one destination differ in one of {list(DESTINATION_COLUMNS)}",
            "give every step row of a rate card, prefix and jurisdiction the same values in those columns",
        )
    # a band's first step (the sort puts its lowest from_second first) starts after second 0
    no_start = steps.filter(pl.col("_new_band") & (pl.col("from_second") != 0))
    if no_start.height:
        raise ReferenceDataError(
            path,
            _first_row(steps, "_band", no_start),
            "the destination has no step from second 0",
            "add a rate row with from_second 0 for this rate card, prefix and jurisdiction",
        )
    length = pl.col("from_second").shift(-1) - pl.col("from_second")
    ragged = steps.filter(
        ~pl.col("_new_band").shift(-1, fill_value=True)
        & ((length < pl.col("first_increment_seconds"))
           | ((length - pl.col("first_increment_seconds")) % pl.col("increment_seconds") != 0))
    )  # fmt: skip
    if ragged.height:
        # the first in the order of the destination's text columns, as the rows are listed per destination
        first = rows.join(ragged.select("_row"), on="_row").sort(*BAND_KEY, "from_second", nulls_last=True)
        raise ReferenceDataError(
            path,
            first["_row"][0],
            "the step ends before its increments do (length is not first increment + whole increments)",
            "move the next step's from_second to a whole increment of this step",
        )
    uneven = steps.filter(_unlike_band_before())
    if uneven.height:
        # the last band (by its first row) of a destination whose bands differ
        bad = steps.filter(pl.col("_dest").is_in(uneven["_dest"].implode()))
        raise ReferenceDataError(
            path,
            int(bad.group_by("_band").agg(pl.min("_row"))["_row"].max()),  # type: ignore[arg-type]
            "the time bands of one destination have different steps or increments",
            "give every time band of a rate card, prefix and jurisdiction the same from_second and increments",
        )


def _unlike_band_before() -> pl.Expr:
    """On rows sorted by destination, band and from_second: the row's band has another number of steps than the
    destination's first band, or its step differs (from_second, increments) from the same step of the band
    before it — the bands of one destination must be billed in the same steps."""
    index = pl.int_range(pl.len())
    start = pl.when(pl.col("_new_band")).then(index).forward_fill()
    last = pl.when(pl.col("_new_band").shift(-1, fill_value=True)).then(index).backward_fill()
    steps = last - start + 1
    first_band_steps = pl.when(pl.col("_new_dest")).then(steps).forward_fill()
    in_first_band = pl.col("_band") == pl.when(pl.col("_new_dest")).then(pl.col("_band")).forward_fill()
    before = (index - steps).clip(0)
    shape = ("from_second", "first_increment_seconds", "increment_seconds")
    return ~in_first_band & (
        (steps != first_band_steps)
        | pl.any_horizontal([pl.col(c) != pl.col(c).gather(before) for c in shape])
    )


def _first_row(steps: pl.DataFrame, group: str, bad: pl.DataFrame) -> int:
    """The lowest row number of the groups (destinations or bands) that hold a bad row."""
    return int(steps.filter(pl.col(group).is_in(bad[group].implode()))["_row"].min())  # type: ignore[arg-type]


def _check_time_zones(path: Path, frame: pl.DataFrame) -> None:
    """Every state's time zone is an IANA name the time zone database knows."""
    from zoneinfo import available_timezones

    rows = frame.with_row_index("_row", offset=2)
    unknown = rows.filter(~pl.col("timezone").is_in(sorted(available_timezones())))
    if unknown.height:
        row = unknown.row(0, named=True)
        raise ReferenceDataError(
            path,
            row["_row"],
            f"timezone={row['timezone']!r} is not an IANA time zone",
            "use e.g. America/Chicago",
        )


def _minutes(path: Path, row_no: int, column: str, text: str) -> int:
    hours, _, minutes = text.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2 and int(minutes) < 60):
        raise ReferenceDataError(path, row_no, f"{column}={text!r} is not a time HH:MM", f"correct {column}")
    value = int(hours) * 60 + int(minutes)
    if value > 24 * 60:
        raise ReferenceDataError(path, row_no, f"{column}={text!r} is after 24:00", f"correct {column}")
    return value


def _check_time_bands(path: Path, frame: pl.DataFrame) -> None:
    """The bands of a band set cover each day type they name from 00:00 to 24:00, without gap or overlap
    (weekday and weekend are required; holiday rows are optional: without them a holiday is an ordinary day)."""
    days: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
    for row_no, row in enumerate(frame.iter_rows(named=True), start=2):
        start = _minutes(path, row_no, "start_time", row["start_time"])
        end = _minutes(path, row_no, "end_time", row["end_time"])
        days.setdefault((row["band_set"], row["day_type"]), []).append((start, end, row_no))
    for band_set in sorted({band_set for band_set, _ in days}):
        for day_type in ("weekday", "weekend"):
            if (band_set, day_type) not in days:
                raise ReferenceDataError(
                    path, None, f"band set {band_set} has no {day_type} bands", f"add {day_type} rows"
                )
    for (band_set, day_type), spans in days.items():
        reached = 0
        for start, end, row_no in sorted(spans):
            if start != reached or end <= start:
                raise ReferenceDataError(
                    path,
                    row_no,
                    f"band set {band_set} ({day_type}) has a gap or overlap at {start // 60:02d}:{start % 60:02d}",
                    "make each band start where the previous one ends, from 00:00 to 24:00",
                )
            reached = end
        if reached != 24 * 60:
            raise ReferenceDataError(
                path,
                spans[-1][2],
                f"band set {band_set} ({day_type}) ends before 24:00",
                "extend the last band",
            )


def _check_band_sets(folder: Path, frames: dict[str, pl.DataFrame]) -> None:
    """A rate card's band set exists; a band-specific rate row names a band of its card's band set."""
    policies = frames["rate_card_policies"].with_row_index("_row", offset=2)
    known = frames["time_bands"]["band_set"].unique().implode()
    missing = policies.filter(pl.col("band_set").is_not_null() & ~pl.col("band_set").is_in(known))
    if missing.height:
        row = missing.row(0, named=True)
        raise ReferenceDataError(
            folder / "rate_card_policies.csv",
            row["_row"],
            f"band_set={row['band_set']!r} is not in time_bands.csv",
            "add its bands to time_bands.csv or correct the value",
        )
    bands = frames["time_bands"].select("band_set", "time_band").unique()
    rows = frames["rate_cards"].with_row_index("_row", offset=2).filter(pl.col("time_band").is_not_null())
    checked = rows.join(policies.select("rate_card_id", "band_set"), on="rate_card_id", how="left").join(
        bands.with_columns(known=pl.lit(True)), on=["band_set", "time_band"], how="left"
    )
    bad = checked.filter(pl.col("known").is_null())
    if bad.height:
        row = bad.sort("_row").row(0, named=True)
        raise ReferenceDataError(
            folder / "rate_cards.csv",
            row["_row"],
            f"time_band={row['time_band']!r} is not a band of rate card {row['rate_card_id']}'s band set",
            "name a band of the card's band set (rate_card_policies.csv, time_bands.csv) or leave it empty",
        )


def _check_tiers(path: Path, frame: pl.DataFrame) -> None:
    """A tier table starts at 0 units, has one mode, and one table per plan and service."""
    rows = frame.with_row_index("_row", offset=2)
    bad = rows.filter(
        (pl.col("from_units").min().over("tier_id") != 0)
        | (pl.col("mode").n_unique().over("tier_id") > 1)
        | (pl.col("tier_id").n_unique().over("plan_id", "service") > 1)
    )
    if bad.height:
        raise ReferenceDataError(
            path,
            bad["_row"][0],
            "a tier table must start at from_units 0, have one mode, and be the only one of its plan and service",
            "add the 0 row, use one mode per tier_id, or merge the tables",
        )


def _check_currencies(folder: Path, frames: dict[str, pl.DataFrame]) -> None:
    """An account is billed in its own currency, so every plan it is on (now or before a plan change) and every
    price book of those plans that names a currency must be priced in it."""
    accounts = frames["accounts"].select("account_id", "plan_id", "currency")
    changes = frames["plan_changes"]
    on_plan = pl.concat([
        accounts.select("account_id", "plan_id", "currency"),
        changes.join(accounts, on="account_id").select("account_id", pl.col("old_plan_id").alias("plan_id"), "currency"),
        changes.join(accounts, on="account_id").select("account_id", pl.col("new_plan_id").alias("plan_id"), "currency"),
    ]).unique()  # fmt: skip
    plans = (
        frames["plans"].with_row_index("_row", offset=2).select("_row", "plan_id", plan_currency="currency")
    )
    wrong = (
        on_plan.join(plans, on="plan_id").filter(pl.col("currency") != pl.col("plan_currency")).sort("_row")
    )
    if wrong.height:
        row = wrong.row(0, named=True)
        raise ReferenceDataError(
            folder / "plans.csv",
            row["_row"],
            f"plan {row['plan_id']} is priced in {row['plan_currency']} but account {row['account_id']} on it is "
            f"billed in {row['currency']}",
            "give the account a plan in its currency, or a separate plan in that currency",
        )
    books = frames["price_books"].with_row_index("_row", offset=2).filter(pl.col("currency").is_not_null())
    wrong = (
        books.join(on_plan, on="plan_id").filter(pl.col("currency") != pl.col("currency_right")).sort("_row")
    )
    if wrong.height:
        row = wrong.row(0, named=True)
        raise ReferenceDataError(
            folder / "price_books.csv",
            row["_row"],
            f"price book {row['price_book_id']} is priced in {row['currency']} but account {row['account_id']} "
            f"using it (plan {row['plan_id']}) is billed in {row['currency_right']}",
            "price the book in the plan's currency (or leave currency empty: the plan's currency)",
        )


# hostile input (issue 9) ------------------------------------------------------------------------------------


def _check_priced_plans(folder: Path, frames: dict[str, pl.DataFrame]) -> None:
    """Every service number's plan has a price book that can price it (price book fallback: the book's agent and
    state empty or the number's own): without one, all its calls would fall to suspense with no rate, so the
    run is refused before rating, naming the plan, the account and the number."""
    books = frames["price_books"].select("plan_id", book_agent="agent_id", book_state="state")
    numbers = (
        frames["service_numbers"]
        .with_row_index("_row", offset=2)
        .join(frames["accounts"].select("account_id", "agent_id", "plan_id"), on="account_id")
    )
    priced = numbers.join(books, on="plan_id").filter(
        (pl.col("book_agent").is_null() | (pl.col("book_agent") == pl.col("agent_id")))
        & (pl.col("book_state").is_null() | (pl.col("book_state") == pl.col("service_state")))
    )
    unpriced = numbers.join(priced.select("_row").unique(), on="_row", how="anti").sort("_row")
    if unpriced.height:
        row = unpriced.row(0, named=True)
        raise ReferenceDataError(
            folder / "service_numbers.csv",
            row["_row"],
            f"plan {row['plan_id']} has no price book for {row['service_number']} (account {row['account_id']}, "
            f"agent {row['agent_id']}, state {row['service_state']}); {unpriced.height} number(s) are unpriced",
            f"add a row for plan {row['plan_id']} to price_books.csv (agent and state empty to price all its "
            "numbers), or move the account to a priced plan",
        )


# --- intake and mediation: their own tables only ---
USAGE_TABLES = ("sources", "accounts", "service_numbers", "service_codes")


def read_reference(folder: Path) -> Reference:
    """Every reference table read and typed (a bad value still raises with its row), without the checks across
    rows and tables of ``load_reference``: only for a folder whose content passed them (``reference_verdict``)."""
    return Reference(_read_frames(folder, TABLES))


def load_usage_reference(folder: Path) -> Reference:
    """The reference tables intake and mediation read — the sources, and the service numbers with the accounts
    that hold them — checked by ``load_reference``'s rules for them (unique keys, every number's account
    known, no overlapping validity periods of a number: the account that held a number at the call time is the
    one billed) — and the service codes that make a voice record a value-added event. The other tables (the
    rate deck above all) are read and checked by the stages that use them."""
    frames = _read_frames(folder, USAGE_TABLES)
    for name in USAGE_TABLES:
        _check_unique(folder / f"{name}.csv", frames[name], KEYS[name])
    _check_service_numbers(folder, frames)
    return Reference(frames)
