"""Mediation assets: the file ledger of landed usage files, and the cycle's mediated usage."""

import dagster as dg

from assets.checks import record_accounting_result
from assets.metadata import counts, markdown_table, rows_md
from assets.partitions import bill_cycles
from assets.resources import CdrbillHome
from pipeline.accounting import MEDIATION_OUTCOMES
from pipeline.engine import session
from pipeline.intake import register_landed_files
from pipeline.mediation import mediate_cycle
from pipeline.state import open_state


@dg.asset(
    partitions_def=bill_cycles, group_name="mediation", kinds={"duckdb", "parquet"}
)
def usage_files(context: dg.AssetExecutionContext, cdrbill: CdrbillHome) -> dg.MaterializeResult:
    """Landed usage files registered in the file ledger: new files normalised into the lake, duplicate files
    refused by content hash, unreadable files quarantined with a reason."""
    home, settings = cdrbill.home(), cdrbill.settings()
    reference = cdrbill.reference()
    with open_state(home.state_db) as state:
        report = register_landed_files(
            home,
            state,
            reference.sources,
            cycle=context.partition_key,
            billing_timezone=settings.billing_timezone,
        )
        ledger = state.sql(
            "select file_id, source_id, file_name, status, reason, records, duplicate_of "
            "from usage_files order by file_id"
        ).pl()
    return dg.MaterializeResult(
        metadata={
            **counts(
                {
                    "files_loaded": len(report.loaded),
                    "duplicate_files": len(report.duplicate_files),
                    "files_quarantined": len(report.quarantined),
                    "records_loaded": report.records,
                }
            ),
            "dagster/row_count": report.records,
            "this_run": rows_md(report.loaded + report.duplicate_files + report.quarantined),
            "file_ledger": markdown_table(ledger, 50),
        }
    )


@dg.asset(
    partitions_def=bill_cycles,
    group_name="mediation",
    kinds={"duckdb", "parquet"},
    deps=[usage_files],
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
    with session(
        cdrbill.reference(), memory_limit=settings.duckdb_memory_limit, spill_dir=home.root / "tmp"
    ) as con:
        result = mediate_cycle(con, home.lake, context.partition_key)
        suspense = con.sql(
            "select reason, count(*) as records from mediation_outcomes "
            "where status in ('suspended', 'discarded', 'duplicate') "
            "group by reason order by records desc"
        ).pl()
    yield dg.Output(
        None,
        metadata={
            **counts(result),
            "dagster/row_count": result["normalised"],
            "reasons": markdown_table(suspense),
        },
    )
    yield record_accounting_result(
        cdrbill, context.partition_key, "mediation_accounts_for_every_record", MEDIATION_OUTCOMES
    )
