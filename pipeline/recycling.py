"""Recycling: once reference data or a source's settings are fixed, suspended records get another chance.
Records suspended at parse or normalisation are re-read from their archived raw file with the current
sources and settings; only rows that were suspended may change (rows already normalised or discarded stay
exactly as they were), and the file's records are swapped in atomically. Mediation and rating then run the
cycle again from the lake — their partitions are rebuilt, never appended to — so a recycled record is rated
once and leaves suspense. Each resubmitted record is written to the ``recycled_records`` ledger with the
reason it was suspended for (the mediation-quality report reads it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from pipeline.engine import first_row
from pipeline.faults import crash_point
from pipeline.formats import FileRejected, parse_file
from pipeline.intake import USAGE_RECORDS
from pipeline.lake import lake_table, partition_dir, replace_partition
from pipeline.mediation import record_files
from pipeline.normalise import normalise
from pipeline.suspense import SUSPENSE_REASONS

# the stage of each suspense reason: parse/normalise reasons are re-read here, mediation/rating reasons are
# decided again when mediation and rating rebuild the cycle
STAGE_OF_REASON = {code: stage for code, stage, _meaning, _fix in SUSPENSE_REASONS}
REBUILT_STAGES = ("mediation", "rating")
LEDGER_COLUMNS = ("file_id", "line_no", "cycle", "previous_stage", "previous_reason", "new_status", "new_reason")


@dataclass
class RecycleReport:
    """What one recycle run did: per file, the suspended records examined and those that left suspense."""

    files: list[dict] = field(default_factory=list)

    @property
    def examined(self) -> int:
        return sum(f["examined"] for f in self.files)

    @property
    def recycled(self) -> int:
        return sum(f["recycled"] for f in self.files)


def files_with_suspense(lake: Path, cycle: str) -> list[int]:
    """The loaded files holding records suspended at parse or normalisation in the cycle."""
    files = record_files(lake)
    if not files:
        return []
    found = (
        pl.scan_parquet(files)
        .filter((pl.col("cycle") == cycle) & (pl.col("status") == "suspended"))
        .select(pl.col("file_id").unique().sort())
        .collect()
    )
    return [int(file_id) for file_id in found["file_id"]]


def recycle_suspense(
    lake: Path,
    state: duckdb.DuckDBPyConnection,
    sources: pl.DataFrame,
    *,
    cycle: str,
    billing_timezone: str,
    billing_window_days: int = 180,
) -> RecycleReport:
    """Re-parse and re-normalise the suspended records of ``cycle`` from their archived files (the rule:
    a record leaves suspense only by passing every normalisation rule with today's reference data)."""
    report = RecycleReport()
    recycled_at = datetime.now(UTC).replace(tzinfo=None)
    record_recycled(state, resubmitted_by_rebuild(lake, cycle), recycled_at)
    by_id = {row["source_id"]: row for row in sources.iter_rows(named=True)}
    for file_id in files_with_suspense(lake, cycle):
        ledger = first_row(
            state,
            "select source_id, registered_cycle, registered_at, stored_path from usage_files "
            "where file_id = ? and status = 'loaded'",
            [file_id],
        )
        source = by_id.get(ledger[0]) if ledger else None
        if ledger is None or source is None or not Path(ledger[3]).exists():
            report.files.append(
                {"file_id": file_id, "examined": 0, "recycled": 0, "skipped": "no source/file"}
            )
            continue
        old = pl.read_parquet(lake_table(lake, USAGE_RECORDS, "records", file_id=file_id))
        try:
            parsed = parse_file(source["format"], Path(ledger[3]).read_bytes(), source.get("template"))
        except FileRejected as rejected:
            report.files.append(
                {"file_id": file_id, "examined": 0, "recycled": 0, "skipped": rejected.reason}
            )
            continue
        fresh = normalise(
            parsed.records,
            file_id=file_id,
            source_id=ledger[0],
            timezone=parsed.timezone or source["timezone"],
            billing_timezone=billing_timezone,
            registered_cycle=ledger[1],
            region=source["default_region"],
            received_on=ledger[2].date(),
            billing_window_days=billing_window_days,
        )
        records, examined, recycled = _merge(old, fresh, cycle)
        record_recycled(state, _readings(old, fresh, cycle), recycled_at)
        crash_point("recycling.ledger_written")
        if recycled:
            replace_partition(lake, partition_dir(lake, USAGE_RECORDS, file_id=file_id), {"records": records})
        report.files.append({"file_id": file_id, "examined": examined, "recycled": recycled})
    return report


def _merge(old: pl.DataFrame, fresh: pl.DataFrame, cycle: str) -> tuple[pl.DataFrame, int, int]:
    """The file's records with each suspended row of the cycle replaced by its fresh reading (same line);
    every other row, and any line the fresh reading lacks, stays as it was."""
    retry = (pl.col("status") == "suspended") & (pl.col("cycle") == cycle)
    candidates = old.filter(retry).select("line_no")
    replacement = fresh.join(candidates, on="line_no", how="semi")
    kept = old.join(replacement.select("line_no"), on="line_no", how="anti")
    merged = pl.concat([kept, replacement.select(old.columns)]).sort("line_no")
    recycled = replacement.filter(pl.col("status") != "suspended").height
    return merged, candidates.height, recycled


def _readings(old: pl.DataFrame, fresh: pl.DataFrame, cycle: str) -> pl.DataFrame:
    """The ledger rows of a file's re-read records: each suspended record of the cycle that the fresh reading
    changed (it left suspense, or is suspended for another reason), with its previous reason; a record read
    again exactly as before was not recycled (nothing was fixed for it) and a line the fresh reading lacks
    stays as it was."""
    previous = old.filter((pl.col("status") == "suspended") & (pl.col("cycle") == cycle)).select(
        "file_id", "line_no", "cycle", previous_reason=pl.col("reason")
    )
    return (
        previous.join(fresh.select("line_no", "status", "reason"), on="line_no", how="left")
        .with_columns(
            previous_stage=pl.col("previous_reason").replace_strict(STAGE_OF_REASON, default="parse"),
            new_status=pl.col("status").fill_null("suspended"),
            new_reason=pl.when(pl.col("status").is_null()).then("previous_reason").otherwise("reason"),
        )
        .filter(
            (pl.col("new_status") != "suspended") | (pl.col("new_reason") != pl.col("previous_reason"))
        )
        .select(LEDGER_COLUMNS)
    )


def resubmitted_by_rebuild(lake: Path, cycle: str) -> pl.DataFrame:
    """The cycle's records suspended at mediation or rating (unknown subscriber, no rate, …): resubmitted as
    they are, the rebuild of the cycle decides them again with today's reference data."""
    streams = [
        lake_table(lake, "mediated", "suspended", cycle=cycle),
        lake_table(lake, "rated", "suspended", cycle=cycle),
    ]
    found = [pl.scan_parquet(path).select("file_id", "line_no", "cycle", "reason") for path in streams if path.exists()]
    if not found:
        return pl.DataFrame(schema=dict.fromkeys(LEDGER_COLUMNS, pl.String))
    suspended = pl.concat(found).with_columns(
        previous_stage=pl.col("reason").replace_strict(STAGE_OF_REASON, default="parse")
    )
    return (
        suspended.filter(pl.col("previous_stage").is_in(REBUILT_STAGES))
        .select(
            "file_id",
            "line_no",
            "cycle",
            "previous_stage",
            previous_reason=pl.col("reason"),
            new_status=pl.lit("resubmitted"),
            new_reason=pl.lit(None, pl.String),
        )
        .collect()
    )


def record_recycled(state: duckdb.DuckDBPyConnection, rows: pl.DataFrame, recycled_at: datetime) -> None:
    """Write resubmitted records to the ``recycled_records`` ledger in one transaction. The rule: written
    *before* the file's partition is swapped in, keyed by (file_id, line_no, previous_reason) and never by the
    run time, so a run killed after the ledger and before the swap finds the record still suspended when
    re-run and writes the same row again (upsert: the latest reading wins); after the swap the record is no
    longer suspended and nothing is written twice. A record is never swapped without its ledger row."""
    if rows.height == 0:
        return
    state.register("recycled_now", rows)
    state.execute("begin transaction")
    try:
        state.execute(
            """
            insert into recycled_records
            select file_id, line_no, cycle, previous_stage, previous_reason, new_status, new_reason, ?::timestamp
            from recycled_now
            on conflict (file_id, line_no, previous_reason) do update set
                new_status = excluded.new_status,
                new_reason = excluded.new_reason,
                recycled_at = excluded.recycled_at
            """,
            [recycled_at],
        )
        state.execute("commit")
    except Exception:
        state.execute("rollback")
        raise
    finally:
        state.unregister("recycled_now")
