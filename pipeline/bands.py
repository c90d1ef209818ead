"""Time bands: the calendar of band periods a cycle's calls are rated in. A time band (peak, off-peak,
weekend, holiday…) is chosen in the subscriber's local time — the time zone of the line's service state — by
day type (holiday, weekend, weekday) and time of day. Holidays come from the ``holidays`` library: the
service state's holidays (``state``), the US federal ones (``federal``) or none, a rate card's policy.

The calendar is computed once per run for the few days of the cycle (band sets × holiday policies × states ×
days, a few thousand rows at most), so the rating SQL joins it and no Python runs per event."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import polars as pl

CALENDAR_SCHEMA = {
    "band_set": pl.String(),
    "holidays": pl.String(),
    "state": pl.String(),
    "period_start_utc": pl.Datetime("us"),
    "period_end_utc": pl.Datetime("us"),
    "time_band": pl.String(),
    "day_type": pl.String(),
}


def holiday_dates(policy: str, state: str, years: list[int]) -> set[date]:
    """The holidays a rate card's policy observes for a line in ``state``."""
    if policy == "none":
        return set()
    subdiv = state if policy == "state" and state in holidays.US.subdivisions else None
    return set(holidays.country_holidays("US", subdiv=subdiv, years=years))


def day_type(day: date, holiday_days: set[date], has_holiday_bands: bool) -> str:
    """Holiday (when the band set prices holidays), else weekend (Saturday, Sunday), else weekday."""
    if has_holiday_bands and day in holiday_days:
        return "holiday"
    return "weekend" if day.weekday() >= 5 else "weekday"


def _local_to_utc(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    """A local wall-clock time (minutes after midnight; 24:00 is the next midnight) as naive UTC; a time in a
    DST gap or overlap is read as its first occurrence (``fold=0``), the rule normalisation uses."""
    local = datetime.combine(day, time(0), tzinfo=zone) + timedelta(minutes=minutes)
    wall = datetime.combine(local.date(), local.time(), tzinfo=zone)
    return wall.astimezone(UTC).replace(tzinfo=None)


def band_calendar(
    time_bands: pl.DataFrame,
    rate_card_policies: pl.DataFrame,
    state_time_zones: pl.DataFrame,
    first_day: date,
    last_day: date,
) -> pl.DataFrame:
    """The band periods, in UTC, of every (band set, holiday policy) a rate card uses, for every state, for the
    local days ``first_day``..``last_day``; the rating SQL finds the periods a call overlaps."""
    bands: dict[tuple[str, str], list[tuple[int, int, str]]] = {}
    for row in time_bands.iter_rows(named=True):
        start_h, start_m = row["start_time"].split(":")
        end_h, end_m = row["end_time"].split(":")
        bands.setdefault((row["band_set"], row["day_type"]), []).append(
            (int(start_h) * 60 + int(start_m), int(end_h) * 60 + int(end_m), row["time_band"])
        )
    uses = sorted(
        {(r["band_set"], r["holidays"]) for r in rate_card_policies.iter_rows(named=True) if r["band_set"]}
    )
    days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
    years = sorted({d.year for d in days})
    rows = []
    for band_set, policy in uses:
        has_holiday_bands = (band_set, "holiday") in bands
        for state, timezone in state_time_zones.select("state", "timezone").iter_rows():
            zone = ZoneInfo(timezone)
            observed = holiday_dates(policy, state, years)
            for day in days:
                kind = day_type(day, observed, has_holiday_bands)
                for start, end, band in bands[(band_set, kind)]:
                    rows.append(
                        (band_set, policy, state, _local_to_utc(day, start, zone), _local_to_utc(day, end, zone),
                         band, kind)
                    )  # fmt: skip
    return pl.DataFrame(rows, schema=CALENDAR_SCHEMA, orient="row")
