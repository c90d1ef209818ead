"""The duplicate-call rules (``mediation.duplicate_calls``: sql/mediation_*_keys.sql and *_duplicates.sql, the hashes
counted in one part or several) against the rule as written, checked pair by pair in Python over generated calls
whose keys collide often: each later call is a duplicate of the earliest call (file, then line) of this cycle or an
earlier one that has its source's unique id, or, among the calls left, its numbers, billed seconds, service, units
(when the earlier call has them) and answer time (the start time where either has none; times of two sources up to
the tolerance apart)."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import mediation

T0 = datetime(2026, 10, 5, 12, 0, 0)
COLUMNS = {
    "source_id": pl.String, "source_record_id": pl.String, "charged_number": pl.String,
    "called_number": pl.String, "start_utc": pl.Datetime("us"), "answer_utc": pl.Datetime("us"),
    "billsec": pl.Int64, "service": pl.String, "units": pl.Int64, "record_ordinal": pl.Int64,
}  # fmt: skip

call = st.fixed_dictionaries(
    {
        "source_id": st.sampled_from(["sw-a", "sw-b"]),
        "source_record_id": st.sampled_from([None, "", "u1", "u2", "u3"]),
        "charged_number": st.sampled_from(["+13125550100", "+13125550100", "+13125550101"]),
        "called_number": st.sampled_from([None, "+12125550199", "+12125550199"]),
        "start": st.integers(0, 3),
        "answer": st.one_of(st.none(), st.integers(0, 3)),
        "billsec": st.sampled_from([30, 30, 0]),
        "service": st.sampled_from(["voice", "voice", "sms"]),
        "units": st.sampled_from([30, 30, None, 1]),
        "this_cycle": st.booleans(),
    }
)


def frame(calls: list[dict[str, Any]]) -> pl.DataFrame:
    rows = [
        {
            **{k: c[k] for k in ("source_id", "source_record_id", "charged_number", "called_number", "billsec",
                                 "service", "units")},  # fmt: skip
            "start_utc": T0 + timedelta(seconds=c["start"]),
            "answer_utc": None if c["answer"] is None else T0 + timedelta(seconds=c["answer"]),
            "record_ordinal": c["ordinal"],
        }
        for c in calls
    ]
    return pl.DataFrame(rows, schema=COLUMNS)


def rule_as_written(calls: list[dict[str, Any]], tolerance: int) -> tuple[dict[int, int], dict[int, int]]:
    """Each later call of this cycle → the ordinal of the earliest call it duplicates, by source id, then by
    content among the calls not duplicates by source id."""
    this_cycle = [c for c in calls if c["this_cycle"]]
    prior = [c for c in calls if not c["this_cycle"]]
    by_id = {}
    for later in this_cycle:
        if later["source_record_id"]:
            earlier = [
                e["ordinal"] for e in this_cycle + prior
                if e["source_id"] == later["source_id"] and e["source_record_id"] == later["source_record_id"]
                and e["ordinal"] < later["ordinal"]
            ]  # fmt: skip
            if earlier:
                by_id[later["ordinal"]] = min(earlier)
    unique = [c for c in this_cycle if c["ordinal"] not in by_id]

    def same_content(e: dict[str, Any], later: dict[str, Any]) -> bool:
        if (e["charged_number"], e["called_number"], e["billsec"], e["service"]) != (
            later["charged_number"], later["called_number"], later["billsec"], later["service"]
        ):  # fmt: skip
            return False
        if e["units"] is not None and e["units"] != later["units"]:
            return False
        if e["answer"] is None or later["answer"] is None:
            apart = abs(e["start"] - later["start"])
        else:
            apart = abs(e["answer"] - later["answer"])
        return apart <= (tolerance if e["source_id"] != later["source_id"] else 0)

    by_content = {}
    for later in unique:
        earlier = [e["ordinal"] for e in unique + prior if e["ordinal"] < later["ordinal"] and same_content(e, later)]
        if earlier:
            by_content[later["ordinal"]] = min(earlier)
    return by_id, by_content


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(call, min_size=1, max_size=12), st.sampled_from([0, 2]), st.sampled_from([1, 3, 10**6]), st.randoms())
def test_the_duplicate_rules_find_the_pairs_of_the_written_rule(calls, tolerance, part_rows, rnd):
    ordinals = rnd.sample(range(1, 10 * len(calls) + 1), len(calls))
    calls = [{**c, "ordinal": o} for c, o in zip(calls, ordinals, strict=True)]
    con = duckdb.connect()
    con.execute(f"set variable duplicate_tolerance_seconds = {tolerance}")
    con.register("billable_calls", frame([c for c in calls if c["this_cycle"]]))
    con.register("prior_calls", frame([c for c in calls if not c["this_cycle"]]))
    with tempfile.TemporaryDirectory() as folder:
        mediation.duplicate_calls(con, Path(folder), part_rows)  # the hashes counted in parts of part_rows calls
        found = {
            name: dict(con.execute(f"select record_ordinal, first_ordinal from {name}").fetchall())
            for name in ("source_id_duplicates", "content_duplicates")
        }
    by_id, by_content = rule_as_written(calls, tolerance)
    assert found["source_id_duplicates"] == by_id
    assert found["content_duplicates"] == by_content
