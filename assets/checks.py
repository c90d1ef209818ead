"""Asset check results shared by the stages: record accounting, file by file."""

import dagster as dg

from assets.metadata import counts, markdown_table
from assets.resources import CdrbillHome
from pipeline.accounting import OUTCOMES, record_accounting
from pipeline.engine import session


def record_accounting_result(
    cdrbill: CdrbillHome,
    cycle: str,
    check_name: str,
    outcomes: dict[str, tuple[str, str]] = OUTCOMES,
    asset: str | None = None,
) -> dg.AssetCheckResult:
    """Passes when every file's records in the cycle equal the sum of the outcomes, none counted twice.
    ``asset`` names the checked asset when an op of a graph-backed asset yields the result."""
    with session() as con:
        table = record_accounting(con, cdrbill.home().lake, cycle, outcomes)
    unbalanced = table.filter(~table["balanced"]).height
    totals = {c: int(table[c].sum()) for c in table.columns if c not in ("file_id", "balanced")}
    return dg.AssetCheckResult(
        check_name=check_name,
        asset_key=dg.AssetKey(asset) if asset else None,
        passed=unbalanced == 0,
        metadata={**counts({**totals, "unbalanced_files": unbalanced}), "by_file": markdown_table(table)},
    )
