"""Agent commission assets: the cycle's commission per account and the agent statements."""

import dagster as dg

from assets.billing import invoices
from assets.metadata import counts, markdown_table
from assets.partitions import bill_cycles
from assets.resources import CdrbillHome
from pipeline.commissions import COMMISSIONS, compute_commissions
from pipeline.engine import session
from pipeline.lake import lake_table


@dg.asset(partitions_def=bill_cycles, group_name="billing", kinds={"duckdb", "parquet"}, deps=[invoices])
def agent_commissions(context: dg.AssetExecutionContext, cdrbill: CdrbillHome) -> dg.MaterializeResult:
    """Per agent and cycle: the accounts, their billed and collected revenue and the commission by the agent's
    commission plans (lake/commissions/cycle=C/agent_statements.parquet)."""
    home = cdrbill.home()
    cycle = cdrbill.cycle(context.partition_key)
    with session(cdrbill.reference()) as con:
        written = compute_commissions(con, home.lake, cycle)
        path = lake_table(home.lake, COMMISSIONS, "agent_statements", cycle=cycle.key)
        statements = con.sql(f"select * exclude (cycle) from read_parquet('{path.as_posix()}')").pl()
    return dg.MaterializeResult(
        metadata={
            **counts(
                {
                    "agents": written["agent_statements"],
                    "accounts": written["commission_lines"],
                    "total_commission": str(statements["commission"].sum()),
                }
            ),  # fmt: skip
            "dagster/row_count": written["agent_statements"],
            "agent_statements": markdown_table(statements),
        }
    )
