"""Importer of CGRateS v0.10 tariff plans (the CSV layout of its ``data/tariffplans``: Destinations,
Rates, DestinationRates, Timings, RatingPlans, RatingProfiles) into our rating reference tables, so a
carrier can migrate. A rating plan becomes a rate card; its timings become a band set; its rating profiles
become price books of the plan being migrated. What our model cannot express is refused with the file, the
row and the fix (``ReferenceDataError``), never approximated.

Mapping (CGRateS → cdrbill):
* Destinations (Id, Prefix) → ``rate_cards.prefix`` (``*any`` → the card's fallback row, no prefix).
* Rates (Id, ConnectFee, Rate, RateUnit, RateIncrement, GroupIntervalStart): each slot is a rate step from
  GroupIntervalStart at Rate per RateUnit in increments of RateIncrement; the connect fee is the first slot's.
  Slots with different RateUnits are brought to the largest (Rate × largest / unit: exact).
* DestinationRates (RoundingMethod ``*up`` → up, ``*middle`` → half_up, ``*down`` → down; RoundingDecimals;
  MaxCost > 0 → maximum charge).
* Timings (WeekDays 1–5 → weekday, 6;7 → weekend, ``*any`` → both; Time = the band's start) and RatingPlans
  (DestinationRatesId × TimingTag, the highest Weight wins) → a band set per rating plan, split policy.
* RatingProfiles (Category call/sms/mms/data → service; ActivationTime → valid_from; Subject ``*any``) →
  price books of ``plan_id``.

Rating then uses our exact semantics: a call is rounded once, where CGRateS rounds each increment (see
docs/cgrates.md for where the results differ)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
from polars._typing import PolarsDataType

from pipeline.reference import TABLES, ReferenceDataError

ROUNDING = {"*up": "up", "*middle": "half_up", "*down": "down"}
CATEGORIES = {"call": "voice", "sms": "sms", "mms": "mms", "data": "data"}
WEEKDAYS = {"1;2;3;4;5": ("weekday",), "6;7": ("weekend",), "*any": ("weekday", "weekend")}


def _read(folder: Path, name: str) -> list[tuple[int, list[str]]]:
    """(row number, fields) of a CGRateS CSV; the header line starts with '#'."""
    path = folder / f"{name}.csv"
    if not path.exists():
        raise ReferenceDataError(path, None, "file is missing", f"export {name}.csv from the tariff plan")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip() and not line.startswith("#"):
            rows.append((number, [field.strip() for field in line.split(",")]))
    return rows


def _seconds(path: Path, row: int, text: str) -> int:
    """A CGRateS duration (``60s``, ``1m``, ``0``, ``1``) as whole seconds (units for SMS)."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    if not number.isdigit():
        raise ReferenceDataError(
            path, row, f"duration {text!r} is not whole seconds", "use e.g. 60s, 1s or 1m"
        )
    return int(number) * units[unit]


def _money(path: Path, row: int, text: str) -> Decimal:
    value = Decimal(text)
    if value < 0 or value.as_tuple().exponent < -6:  # type: ignore[operator]
        raise ReferenceDataError(path, row, f"amount {text!r} is negative or has more than 6 decimals",
                                 "round the amount to 6 decimals")  # fmt: skip
    return value


def import_tariff_plan(folder: Path, plan_id: str) -> dict[str, pl.DataFrame]:
    """Read a CGRateS v0.10 tariff plan folder into our ``rate_cards``, ``time_bands``,
    ``rate_card_policies`` and ``price_books`` rows (typed like ``reference.TABLES``)."""
    destinations: dict[str, list[str]] = {}
    for _, (dest_id, prefix, *_) in _read(folder, "Destinations"):
        destinations.setdefault(dest_id, []).append(prefix)

    rates_path = folder / "Rates.csv"
    rates: dict[str, list[tuple[int, Decimal, Decimal, int, int]]] = {}
    for row, (rate_id, connect, rate, unit, increment, start, *_) in _read(folder, "Rates"):
        rates.setdefault(rate_id, []).append((
            _seconds(rates_path, row, start), _money(rates_path, row, connect), _money(rates_path, row, rate),
            _seconds(rates_path, row, unit), _seconds(rates_path, row, increment),
        ))  # fmt: skip

    dr_path = folder / "DestinationRates.csv"
    destination_rates: dict[str, tuple[str, str, str, int, Decimal | None]] = {}
    for row, (dr_id, dest_id, rate_id, rounding, places, max_cost, *_) in _read(folder, "DestinationRates"):
        if rounding not in ROUNDING or not places.isdigit() or int(places) > 6:
            raise ReferenceDataError(dr_path, row, f"rounding {rounding} {places} is not supported",
                                     "use *up, *middle or *down with at most 6 decimals")  # fmt: skip
        if rate_id not in rates:
            raise ReferenceDataError(dr_path, row, f"rates {rate_id} are not in Rates.csv", "add them")
        cap = _money(dr_path, row, max_cost or "0")
        destination_rates[dr_id] = (
            dest_id,
            rate_id,
            ROUNDING[rounding],
            int(places),
            cap if cap > 0 else None,
        )

    timings_path = folder / "Timings.csv"
    timings: dict[str, tuple[tuple[str, ...], int]] = {"*any": (("weekday", "weekend"), 0)}
    for row, (tag, years, months, month_days, week_days, start, *_) in _read(folder, "Timings"):
        if (years, months, month_days) != ("*any", "*any", "*any") or week_days not in WEEKDAYS:
            raise ReferenceDataError(timings_path, row, f"timing {tag} names dates or week days we cannot band",
                                     "use *any years, months and month days and week days 1;2;3;4;5, 6;7 "
                                     "or *any (holidays are a rate card policy here)")  # fmt: skip
        hours, minutes, *_ = (start if start != "*any" else "00:00:00").split(":")
        timings[tag] = (WEEKDAYS[week_days], int(hours) * 60 + int(minutes))
    timings.setdefault("ALWAYS", (("weekday", "weekend"), 0))

    plan_rows: dict[str, list[tuple[int, str, str, Decimal]]] = {}
    plans_path = folder / "RatingPlans.csv"
    for row, (plan, dr_id, timing, weight_text, *_) in _read(folder, "RatingPlans"):
        if dr_id not in destination_rates or timing not in timings:
            raise ReferenceDataError(plans_path, row, f"{dr_id} or timing {timing} is not defined",
                                     "add it to DestinationRates.csv / Timings.csv")  # fmt: skip
        plan_rows.setdefault(plan, []).append((row, dr_id, timing, Decimal(weight_text or 0)))  # a priority, not money

    card_rows: list[dict[str, Any]] = []
    band_rows: list[dict[str, Any]] = []
    policies: list[dict[str, Any]] = []
    for plan, entries in sorted(plan_rows.items()):
        banded = {timing for _, _, timing, _ in entries if timings[timing][0] != ("weekday", "weekend")}
        if banded:
            band_rows += _bands(plan, {t for _, _, t, _ in entries}, timings, plans_path)
        policies.append({"rate_card_id": plan, "band_set": plan if banded else None, "band_policy": "split",
                         "holidays": "none"})  # fmt: skip
        best: dict[tuple[str, str], tuple[Decimal, str]] = {}
        for _, dr_id, timing, weight in entries:
            dest_id = destination_rates[dr_id][0]
            for prefix in destinations.get(dest_id, ["*any"] if dest_id == "*any" else []):
                key = (prefix, timing)
                if key not in best or weight > best[key][0]:
                    best[key] = (weight, dr_id)
        for (prefix, timing), (_, dr_id) in sorted(best.items()):
            dest_id, rate_id, method, decimals, max_charge = destination_rates[dr_id]
            band = timing if timing in banded else None  # a *any / ALWAYS timing prices every band
            card_rows += _steps(plan, prefix, dest_id, band, rates[rate_id], method,
                                decimals, max_charge, rates_path)  # fmt: skip

    books: list[dict[str, Any]] = []
    profiles_path = folder / "RatingProfiles.csv"
    for row, (_tenant, category, subject, activation, plan, *_) in sorted(
        _read(folder, "RatingProfiles"), key=lambda r: (r[1][1], r[1][3])
    ):
        if subject != "*any" or category not in CATEGORIES or plan not in plan_rows:
            raise ReferenceDataError(profiles_path, row, f"profile {category}/{subject} → {plan} cannot be a price book",
                                     "import profiles with Subject *any, a call/sms/mms/data category and a "
                                     "rating plan of RatingPlans.csv (per-account pricing is a plan here)")  # fmt: skip
        books.append({"price_book_id": f"PB-{plan_id}-{plan}-{activation[:10]}", "agent_id": None,
                      "plan_id": plan_id, "state": None, "service": CATEGORIES[category], "rate_card_id": plan,
                      "valid_from": date.fromisoformat(activation[:10]), "valid_to": None})  # fmt: skip
    for book, following in zip(books, books[1:], strict=False):
        if following["service"] == book["service"]:
            book["valid_to"] = following["valid_from"]
    return {
        "rate_cards": _frame("rate_cards", card_rows),
        "time_bands": _frame("time_bands", band_rows),
        "rate_card_policies": _frame("rate_card_policies", policies),
        "price_books": _frame("price_books", books),
    }


def _bands(
    plan: str, tags: set[str], timings: dict[str, tuple[tuple[str, ...], int]], path: Path
) -> list[dict[str, Any]]:
    """A rating plan's timings as a band set: each timing's band runs from its start to the next start."""
    rows = []
    for day_type in ("weekday", "weekend"):
        starts = sorted(
            (timings[t][1], t) for t in tags if day_type in timings[t][0] and t not in ("*any", "ALWAYS")
        )
        if not starts or starts[0][0] != 0:
            raise ReferenceDataError(path, None, f"rating plan {plan} has no {day_type} timing from 00:00",
                                     "add a timing that starts at 00:00:00 for those days")  # fmt: skip
        ends = [start for start, _ in starts[1:]] + [24 * 60]
        for (start, tag), end in zip(starts, ends, strict=True):
            rows.append({"band_set": plan, "day_type": day_type, "start_time": f"{start // 60:02d}:{start % 60:02d}",
                         "end_time": f"{end // 60:02d}:{end % 60:02d}", "time_band": tag})  # fmt: skip
    return rows


def _steps(
    plan: str,
    prefix: str,
    destination: str,
    band: str | None,
    slots: list[tuple[int, Decimal, Decimal, int, int]],
    method: str,
    decimals: int,
    cap: Decimal | None,
    path: Path,
) -> list[dict[str, Any]]:
    """A CGRateS rate group as our rate steps (one row per slot), all priced per the largest rate unit."""
    ordered = sorted(slots)
    unit = max(slot[3] for slot in ordered)
    if any(unit % slot[3] for slot in ordered):
        raise ReferenceDataError(path, None, f"rate units of {destination} do not divide each other",
                                 "use rate units that divide the largest one (e.g. 1s and 60s)")  # fmt: skip
    return [
        {"rate_card_id": plan, "prefix": None if prefix == "*any" else prefix, "jurisdiction": None,
         "from_second": start, "destination": destination, "rate_per_unit": rate * (unit // slot_unit),
         "unit_seconds": unit, "first_increment_seconds": increment, "increment_seconds": increment,
         "connect_fee": ordered[0][1], "minimum_charge": Decimal(0), "maximum_charge": cap,
         "rounding_method": method, "rounding_decimals": decimals, "time_band": band, "event_code": None}
        for start, _, rate, slot_unit, increment in ordered
    ]  # fmt: skip


def _frame(table: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Rows typed like the reference table ``table``."""
    types: dict[str, PolarsDataType] = {"str": pl.String, "state": pl.String, "digits": pl.String, "e164": pl.String, "date": pl.Date,
             "money": pl.Decimal(18, 6), "int": pl.Int64}  # fmt: skip
    schema = {c: types.get(k.rstrip("?"), pl.String) for c, k in TABLES[table].items()}
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


def merge_into(reference_dir: Path, tables: dict[str, pl.DataFrame]) -> dict[str, int]:
    """Append imported rows to the reference CSVs in ``reference_dir`` (validate afterwards with
    ``load_reference``); returns the rows added per table."""
    added = {}
    for name, frame in tables.items():
        path = reference_dir / f"{name}.csv"
        existing = pl.read_csv(path, infer_schema=False)
        rows = frame.select([pl.col(c).cast(pl.String) for c in existing.columns])
        pl.concat([existing, rows]).write_csv(path)
        added[name] = frame.height
    return added


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.cgrates TARIFF_PLAN_DIR REFERENCE_DIR --plan PLAN_ID``: import and validate."""
    import argparse

    from pipeline.reference import load_reference

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("tariff_plan", type=Path)
    parser.add_argument("reference", type=Path)
    parser.add_argument("--plan", required=True, help="our plan the imported rating profiles price")
    args = parser.parse_args(argv)
    added = merge_into(args.reference, import_tariff_plan(args.tariff_plan, args.plan))
    load_reference(args.reference)
    print(f"imported {added} into {args.reference} (validated)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
