"""Empty fallbacks for the lake datasets the warehouse reads, so a lake that lacks one (a home where only
mediation ran, or a recycle before any bill run) still publishes: the dataset becomes an empty relation with
the columns and types the real files have.

Billing rule applied here: a stage that has not run yet publishes as empty tables, never as a failed
publication and never as made-up rows. The columns are the stages' own output columns, as DuckDB reads them
(the hive partition column included); ``tests/test_warehouse_partial_lake.py`` compares each fallback with the
real dataset of the sample cycle, so a stage that adds a column fails the test until it is added here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.engine import parquet_glob
from pipeline.lake import lake_tables
from pipeline.rating import rated_events_sql
from pipeline.raw_text import with_raw_text_sql


@dataclass(frozen=True)
class LakeDataset:
    """One Parquet dataset of the lake: its files (a glob under the lake), how they are read, its columns."""

    glob: str
    union_by_name: bool
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type)


# the columns of each mediated stream (suspended, duplicate, discarded: mediation.STREAM_SCHEMA)
MEDIATED_STREAM_COLUMNS: tuple[tuple[str, str], ...] = (
    ("file_id", "BIGINT"),
    ("line_no", "UINTEGER"),
    ("source_id", "VARCHAR"),
    ("cycle", "VARCHAR"),
    ("status", "VARCHAR"),
    ("reason", "VARCHAR"),
    ("source_record_id", "VARCHAR"),
    ("call_id", "VARCHAR"),
    ("peer_record_id", "VARCHAR"),
    ("record_sequence", "VARCHAR"),
    ("charged_number", "VARCHAR"),
    ("calling_number", "VARCHAR"),
    ("called_number", "VARCHAR"),
    ("start_utc", "TIMESTAMP"),
    ("answer_utc", "TIMESTAMP"),
    ("call_date", "DATE"),
    ("billsec", "BIGINT"),
    ("service", "VARCHAR"),
    ("units", "BIGINT"),
    ("sms_chars", "INTEGER"),
    ("event_code", "VARCHAR"),
    ("visited_country", "VARCHAR"),
    ("disposition", "VARCHAR"),
    ("late_from_cycle", "VARCHAR"),
    ("account_id", "VARCHAR"),
    ("service_state", "VARCHAR"),
    ("duplicate_of_file_id", "INTEGER"),
    ("duplicate_of_line_no", "UINTEGER"),
    ("merged_into_file_id", "INTEGER"),
    ("merged_into_line_no", "UINTEGER"),
)
# the raw text of a suspended record, as its readers see it: not in the files, joined back by key from the usage
# records (pipeline/raw_text.py); the duplicate and discarded streams' readers do not show it
RAW_TEXT_COLUMN = ("raw", "VARCHAR")


# what rating adds to a mediated event: how it was priced (sql/rating.sql)
RATING_COLUMNS: tuple[tuple[str, str], ...] = (
    ("agent_id", "VARCHAR"),
    ("plan_id", "VARCHAR"),
    ("jurisdiction", "VARCHAR"),
    ("price_book_id", "VARCHAR"),
    ("price_book_level", "VARCHAR"),
    ("rate_card_id", "VARCHAR"),
    ("prefix", "VARCHAR"),
    ("rate_jurisdiction", "VARCHAR"),
    ("destination", "VARCHAR"),
    ("rate_per_unit", "DECIMAL(18,6)"),
    ("unit_seconds", "BIGINT"),
    ("billing_increment", "VARCHAR"),
    ("connect_fee", "DECIMAL(18,6)"),
    ("minimum_charge", "DECIMAL(18,6)"),
    ("maximum_charge", "DECIMAL(18,6)"),
    ("rounding_rule", "VARCHAR"),
    ("band_set", "VARCHAR"),
    ("band_policy", "VARCHAR"),
    ("time_bands", "VARCHAR"),
    ("billed_seconds", "BIGINT"),
    ("billed_units", "BIGINT"),
    ("allowance_id", "VARCHAR"),
    ("included_units", "BIGINT"),
    ("charged_units", "BIGINT"),
    ("rate_event_code", "VARCHAR"),
    ("roaming_zone", "VARCHAR"),
    ("roaming_surcharge", "DECIMAL(18,6)"),
    ("unrounded_charge", "DECIMAL(30,12)"),
    ("charge_limit", "VARCHAR"),
    ("charge_amount", "DECIMAL(18,6)"),
)

LAKE_DATASETS: dict[str, LakeDataset] = {
    # usage records per loaded file (intake)
    "usage_records": LakeDataset(
        "usage_records/*/records.parquet",
        True,  # files loaded before the answer time was kept lack answer_utc
        (
            ("file_id", "BIGINT"),
            ("line_no", "UINTEGER"),
            ("source_id", "VARCHAR"),
            ("cycle", "VARCHAR"),
            ("status", "VARCHAR"),
            ("reason", "VARCHAR"),
            ("raw", "VARCHAR"),
            ("source_record_id", "VARCHAR"),
            ("call_id", "VARCHAR"),
            ("peer_record_id", "VARCHAR"),
            ("record_sequence", "VARCHAR"),
            ("charged_number", "VARCHAR"),
            ("calling_number", "VARCHAR"),
            ("called_number", "VARCHAR"),
            ("start_utc", "TIMESTAMP"),
            ("answer_utc", "TIMESTAMP"),
            ("call_date", "DATE"),
            ("billsec", "BIGINT"),
            ("service", "VARCHAR"),
            ("units", "BIGINT"),
            ("sms_chars", "INTEGER"),
            ("event_code", "VARCHAR"),
            ("visited_country", "VARCHAR"),
            ("disposition", "VARCHAR"),
        ),
    ),
    # mediation suspense
    "mediated_suspended": LakeDataset(
        "mediated/*/suspended.parquet",
        True,  # cycles mediated before late usage lack late_from_cycle
        (*MEDIATED_STREAM_COLUMNS, RAW_TEXT_COLUMN),
    ),
    # duplicates found by mediation
    "mediated_duplicate": LakeDataset(
        "mediated/*/duplicate.parquet",
        True,  # cycles mediated before late usage lack late_from_cycle
        MEDIATED_STREAM_COLUMNS,
    ),
    # records discarded by a written rule
    "mediated_discarded": LakeDataset(
        "mediated/*/discarded.parquet",
        True,  # cycles mediated before late usage lack late_from_cycle
        MEDIATED_STREAM_COLUMNS,
    ),
    # rated events
    "rated": LakeDataset(
        "rated/*/rated.parquet",
        True,  # a cycle rated before the rating speed work still carries raw text
        (
            *(column for column in MEDIATED_STREAM_COLUMNS if column[0] != "reason"),
            *RATING_COLUMNS,
        ),
    ),
    # rating suspense
    "rated_suspended": LakeDataset(
        "rated/*/suspended.parquet",
        True,  # cycles mediated before late usage lack late_from_cycle
        (
            *(column for column in MEDIATED_STREAM_COLUMNS if column[0] != "reason"),
            *RATING_COLUMNS,
            ("reason", "VARCHAR"),
            RAW_TEXT_COLUMN,
        ),
    ),
    # agent commission lines
    "commission_lines": LakeDataset(
        "commissions/*/commission_lines.parquet",
        True,
        (
            ("cycle", "VARCHAR"),
            ("agent_id", "VARCHAR"),
            ("account_id", "VARCHAR"),
            ("plan_id", "VARCHAR"),
            ("service_state", "VARCHAR"),
            ("commission_plan_id", "VARCHAR"),
            ("basis", "VARCHAR"),
            ("percent", "DECIMAL(18,6)"),
            ("billed_revenue", "DECIMAL(38,2)"),
            ("collected_revenue", "DECIMAL(18,2)"),
            ("commission_base", "DECIMAL(38,2)"),
            ("commission", "DECIMAL(18,2)"),
        ),
    ),
    # agent statements
    "agent_statements": LakeDataset(
        "commissions/*/agent_statements.parquet",
        True,
        (
            ("cycle", "VARCHAR"),
            ("agent_id", "VARCHAR"),
            ("agent_name", "VARCHAR"),
            ("accounts", "BIGINT"),
            ("billed_revenue", "DECIMAL(38,2)"),
            ("collected_revenue", "DECIMAL(38,2)"),
            ("commission", "DECIMAL(38,2)"),
        ),
    ),
}


# the datasets whose rows show their record's raw text (suspense), read through ``raw_text.with_raw_text_sql``
RAW_TEXT_DATASETS = ("mediated_suspended", "rated_suspended")


def dataset_sql(lake: Path, name: str, files: list[Path] | None = None) -> str:
    """A SELECT over the dataset ``name``: its Parquet files (or only ``files`` of them) when there are any, else
    an empty relation with its columns (rule: a stage not run yet publishes as empty tables)."""
    dataset = LAKE_DATASETS[name]
    if files is None:
        folder, _, table = dataset.glob.partition("/*/")
        files = lake_tables(Path(lake), folder, table.removesuffix(".parquet"))
    if name == "rated" and files:
        # the narrow rated facts, each joined to its cycle's normalised columns by the one reader
        cycles = [path.parent.name.split("=", 1)[1] for path in files]
        return "\nunion all by name\n".join(f"select * from ({rated_events_sql(lake, c)})" for c in cycles)
    if files and name in RAW_TEXT_DATASETS:
        # suspense keeps the record's key, not its raw text: the one reader joins it back
        return with_raw_text_sql(lake, files, union_by_name=dataset.union_by_name)
    if files:
        options = ", union_by_name = true" if dataset.union_by_name else ""
        return f"select * from read_parquet({parquet_glob(files)}{options})"
    columns = ", ".join(f'null::{kind} as "{column}"' for column, kind in dataset.columns)
    return f"select {columns} where false"
