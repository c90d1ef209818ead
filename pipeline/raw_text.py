"""The raw record text, kept once. Intake writes every record's raw text, as received, into its file's usage
records (``lake/usage_records/file_id=F/records.parquet``); mediation's four streams and rating's suspense carry
the record's key (file_id, line_no) but not the text, and every reader that shows it (the warehouse's
``suspense`` table, the reports and listings built on it) reads it here, joined back by key. A stream written
before the text was kept once (its own ``raw`` column) is read as it is."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipeline.engine import parquet_glob
from pipeline.intake import USAGE_RECORDS
from pipeline.lake import lake_table

RAW = "raw"


def with_raw_text_sql(lake: Path, tables: list[Path], *, union_by_name: bool = True) -> str:
    """A SELECT of every row of ``tables`` (lake tables keyed by file_id and line_no: the mediated streams,
    rating's suspense) with the record's raw text as received as the last column ``raw``, joined by key from
    the usage records of the files the rows name (only those files are read). Each table's rows come in file
    and line order, as the streams are written. Rule: nothing lost — a row whose usage record is missing fails
    the query (the proof of what the switch sent would be gone), it never reads as a null. A table that
    carries its own ``raw`` (written before the text was kept once) is read as it is."""
    options = ", union_by_name = true" if union_by_name else ""
    parts = []
    for table in tables:
        if RAW in pl.read_parquet_schema(table):
            parts.append(f"select * from read_parquet({parquet_glob([table])}{options})")
        else:
            parts.append(_joined(lake, table, options))
    if not parts:
        raise ValueError("with_raw_text_sql needs at least one table")
    return "\nunion all by name\n".join(f"select * from ({part})" for part in parts)


def _joined(lake: Path, table: Path, options: str) -> str:
    """One keyed table joined to the raw text of its records (``with_raw_text_sql``)."""
    file_ids = pl.read_parquet(table, columns=["file_id"], hive_partitioning=False)["file_id"].unique().sort()
    records = [lake_table(lake, USAGE_RECORDS, "records", file_id=int(file_id)) for file_id in file_ids]
    present = [path for path in records if path.exists()]
    source = (
        f"select file_id, line_no, raw from read_parquet({parquet_glob(present)}, hive_partitioning = false)"
        if present
        else "select null::bigint as file_id, null::uinteger as line_no, null::varchar as raw where false"
    )
    lost = (
        "error('record ' || stream.file_id || ':' || stream.line_no || ' of "
        + table.as_posix().replace("'", "''")
        + " has no usage record: its raw text would be lost. Fix: restore the file''s usage records')"
    )
    # the check is the join's filter, as in rating.rated_events_sql: it holds whatever columns the reader selects
    return f"""
select stream.*, records.raw
from read_parquet({parquet_glob([table])}{options}) as stream
left join ({source}) as records using (file_id, line_no)
where case when records.file_id is null then {lost} else true end
order by stream.file_id, stream.line_no
"""
