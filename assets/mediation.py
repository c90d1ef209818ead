"""Mediation assets: the file ledger of landed usage files, and the cycle's mediated usage."""

from datetime import UTC, datetime

import dagster as dg

from assets.checks import record_accounting_result
from assets.metadata import counts, markdown_table, rows_md
from assets.partitions import bill_cycles
from assets.resources import CdrbillHome
from pipeline.accounting import MEDIATION_OUTCOMES
from pipeline.engine import session
from pipeline.intake import register_landed_files, sequence_gaps
from pipeline.late_usage import route_late_usage
from pipeline.mediation import file_counts, mediate_cycle
from pipeline.recycling import recycle_suspense
from pipeline.state import open_state
from pipeline.suspense import suspense_by_reason_and_age


class UsageFilesConfig(dg.Config):
    """``files``: the landed files to take (paths under landing), as the landing sensor found them complete;
    empty takes every complete landed file."""

    files: list[str] = []


@dg.asset(
    partitions_def=bill_cycles, group_name="mediation", kinds={"duckdb", "parquet"}
)
def usage_files(
    context: dg.AssetExecutionContext, cdrbill: CdrbillHome, config: UsageFilesConfig
) -> dg.MaterializeResult:
    """Landed usage files registered in the file ledger: new files normalised into the lake, duplicate files
    refused by content hash, unreadable files quarantined with a reason; files still landing left for later."""
    home, settings = cdrbill.home(), cdrbill.settings()
    reference = cdrbill.intake_reference()
    with open_state(home.state_db) as state:
        report = register_landed_files(
            home,
            state,
            reference.sources,
            cycle=context.partition_key,
            billing_timezone=settings.billing_timezone,
            billing_window_days=settings.billing_window_days,
            settle_seconds=settings.landing_settle_seconds,
            only=config.files or None,
        )
        ledger = state.sql(
            "select file_id, source_id, file_name, status, reason, records, duplicate_of "
            "from usage_files order by file_id"
        ).pl()
        gaps = sequence_gaps(state)
    return dg.MaterializeResult(
        metadata={
            **counts(
                {
                    "files_loaded": len(report.loaded),
                    "files_read_together": report.read_together,
                    "duplicate_files": len(report.duplicate_files),
                    "files_quarantined": len(report.quarantined),
                    "landing_entries_refused": len(report.refused),
                    "files_still_landing": len(report.still_landing),
                    "records_loaded": report.records,
                }
            ),
            "dagster/row_count": report.records,
            "this_run": rows_md(report.loaded + report.duplicate_files + report.quarantined),
            "refused_in_landing": rows_md(report.refused),
            "still_landing": rows_md(report.still_landing),
            "file_ledger": markdown_table(ledger, 50),
            "sequence_gaps": markdown_table(gaps, 50),
            "missing_sequence_numbers": int(gaps["missing"].sum()) if gaps.height else 0,
        }
    )


@dg.asset(
    partitions_def=bill_cycles,
    group_name="mediation",
    kinds={"parquet"},
    deps=[usage_files],
)
def recycled_suspense(context: dg.AssetExecutionContext, cdrbill: CdrbillHome) -> dg.MaterializeResult:
    """Suspended records of the cycle re-read from their archived files with today's sources and settings;
    those that now pass every rule leave suspense (run by the recycle_suspense job, then mediation and
    rating rebuild the cycle: a recycled record is rated once)."""
    home, settings = cdrbill.home(), cdrbill.settings()
    with open_state(home.state_db) as state:
        report = recycle_suspense(
            home.lake,
            state,
            cdrbill.reference().sources,
            cycle=context.partition_key,
            billing_timezone=settings.billing_timezone,
            billing_window_days=settings.billing_window_days,
        )
    return dg.MaterializeResult(
        metadata={
            **counts({"files": len(report.files), "examined": report.examined, "recycled": report.recycled}),
            "dagster/row_count": report.recycled,
            "files_recycled": rows_md(report.files),
        }
    )


@dg.asset(
    partitions_def=bill_cycles,
    group_name="mediation",
    kinds={"duckdb", "parquet"},
    deps=[usage_files, recycled_suspense],
    check_specs=[
        dg.AssetCheckSpec(
            "mediation_accounts_for_every_record",
            asset="mediated_usage",
            blocking=True,
            description="in = normalised + suspended + duplicate + discarded, per file",
        )
    ],
)
def mediated_usage(context: dg.AssetExecutionContext, cdrbill: CdrbillHome):
    """The cycle's usage records after mediation: each record normalised (with its account), suspended with
    a reason, a duplicate of an earlier record, or discarded by a written rule."""
    home, settings = cdrbill.home(), cdrbill.settings()
    # late usage first: the next open cycle takes the calls of closed cycles that arrived after them
    with open_state(home.state_db) as state:
        late = route_late_usage(
            state,
            home.lake,
            context.partition_key,
            routed_at=datetime.now(UTC).replace(tzinfo=None),
            max_age_days=settings.late_usage_max_age_days,
        )
    # only the tables mediation reads: the whole reference was checked by usage_files, and the rate deck
    # would cost ~1 CPU s and ~230 MiB here (docs/SCALE_LOG.md)
    with session(
        cdrbill.usage_reference(), memory_limit=settings.mediation_memory_limit, spill_dir=home.root / "tmp"
    ) as con:
        result = mediate_cycle(
            con,
            home.lake,
            context.partition_key,
            duplicate_window_days=settings.duplicate_window_days,
            duplicate_tolerance_seconds=settings.duplicate_tolerance_seconds,
        )
        suspense = con.sql(
            "select reason, count(*) as records from mediation_outcomes "
            "where status in ('suspended', 'discarded', 'duplicate') "
            "group by reason order by records desc"
        ).pl()
        per_file = file_counts(con).pl()
        aged = suspense_by_reason_and_age(
            con.sql("select reason, call_date from mediation_outcomes where status = 'suspended'").pl(),
            datetime.now(UTC).date(),
        )
    yield dg.Output(
        None,
        metadata={
            **counts(result),
            **counts(
                {
                    "late_usage_routed_now": late.routed_now,
                    "late_usage_billed_here": late.billed_here,
                    "late_usage_too_old": late.too_old,
                    "late_usage_left_for_next_cycle": late.left_out,
                }
            ),
            "dagster/row_count": result["normalised"],
            "reasons": markdown_table(suspense),
            "per_file": markdown_table(per_file, 50),
            "suspense_by_reason_and_age": markdown_table(aged),
        },
    )
    yield record_accounting_result(
        cdrbill,
        context.partition_key,
        "mediation_accounts_for_every_record",
        MEDIATION_OUTCOMES,
        memory_limit=settings.mediation_memory_limit,
    )
