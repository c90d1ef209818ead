"""Asset check results shared by the stages: record accounting, file by file."""

import dagster as dg

from assets.metadata import counts, markdown_table
from assets.resources import CdrbillHome
from pipeline.accounting import OUTCOMES, checked_record_accounting


def record_accounting_result(
    cdrbill: CdrbillHome,
    cycle: str,
    check_name: str,
    outcomes: dict[str, tuple[str, str]] = OUTCOMES,
    asset: str | None = None,
    *,
    memory_limit: str,
) -> dg.AssetCheckResult:
    """Passes when every file's records in the cycle equal the sum of the outcomes, none counted twice.
    ``asset`` names the checked asset when an op of a graph-backed asset yields the result; ``memory_limit`` is
    the checked stage's own DuckDB limit (the check spills into the home's ``tmp/`` past it)."""
    home = cdrbill.home()
    table = checked_record_accounting(
        home.lake, cycle, outcomes, memory_limit=memory_limit, spill_dir=home.root / "tmp"
    )
    unbalanced = table.filter(~table["balanced"]).height
    totals = {c: int(table[c].sum()) for c in table.columns if c not in ("file_id", "balanced")}
    return dg.AssetCheckResult(
        check_name=check_name,
        asset_key=dg.AssetKey(asset) if asset else None,
        passed=unbalanced == 0,
        metadata={**counts({**totals, "unbalanced_files": unbalanced}), "by_file": markdown_table(table)},
    )
