"""Monthly bill cycles: a cycle key ``YYYY-MM`` names the calendar month it bills."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class BillCycle:
    """One monthly bill cycle; usage belongs to it by the call's start in the billing time zone."""

    key: str
    start: date  # first day
    end: date  # last day, inclusive
    timezone: str

    @classmethod
    def parse(cls, key: str, timezone: str = "America/Chicago") -> BillCycle:
        """Read a cycle key ``YYYY-MM`` (a Dagster monthly partition key may carry ``-01``)."""
        try:
            first = datetime.strptime(key[:7], "%Y-%m").date()
        except ValueError as exc:
            raise ValueError(f"bad bill cycle {key!r}: expected YYYY-MM, e.g. 2026-10") from exc
        last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
        return cls(key=first.strftime("%Y-%m"), start=first, end=last, timezone=timezone)

    @property
    def days(self) -> int:
        """Number of days in the cycle (the proration denominator)."""
        return (self.end - self.start).days + 1

    @property
    def start_utc(self) -> datetime:
        """The cycle's first instant, midnight of its first day in the billing time zone, as naive UTC."""
        local = datetime.combine(self.start, datetime.min.time(), ZoneInfo(self.timezone))
        return local.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)

    @property
    def end_utc(self) -> datetime:
        """The first instant after the cycle, as naive UTC."""
        local = datetime.combine(self.end + timedelta(days=1), datetime.min.time(), ZoneInfo(self.timezone))
        return local.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
