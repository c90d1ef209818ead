"""Bill run assets: the cycle's account charges and its finalised, numbered invoices."""

import dagster as dg

from assets.metadata import counts, markdown_table
from assets.partitions import bill_cycles
from assets.resources import CdrbillHome
from assets.shards import all_shards, cycle_market_shards, shard_of
from pipeline.billing import CHARGES
from pipeline.engine import scalar, session
from pipeline.invoicing import export_invoices, finalize_cycle, register_inputs
from pipeline.lake import lake_table
from pipeline.reconciliation import (
    accounts_without_invoice,
    cycle_reconciliation,
    invoice_total_mismatches,
    negative_totals_without_reason,
)
from pipeline.shards import CHARGES_TABLES, charge_shard, collect_parts, remove_parts
from pipeline.state import open_state


@dg.op
def charge_market_shard(context: dg.OpExecutionContext, cdrbill: CdrbillHome, shard_key: str) -> str:
    """The charge lines of one market shard's accounts into the shard's part of the lake."""
    home, settings = cdrbill.home(), cdrbill.settings()
    reference = cdrbill.reference()
    with session(reference, memory_limit=settings.duckdb_memory_limit) as con:
        result = charge_shard(
            con,
            home.lake,
            cdrbill.cycle(context.partition_key),
            shard_of(cdrbill, shard_key),
            reference,
            settings.carrier_name,
        )
    context.log.info(f"market shard {shard_key}: {result['charge_lines']} charge lines")
    return shard_key


@dg.op(out=dg.Out(dg.Nothing))
def collect_account_charges(context: dg.OpExecutionContext, cdrbill: CdrbillHome, shard_keys: list[str]):
    """The cycle's charge lines from its shards' parts, in one swap."""
    home, settings = cdrbill.home(), cdrbill.settings()
    cycle = cdrbill.cycle(context.partition_key)
    shards = all_shards(cdrbill, shard_keys)
    with session(memory_limit=settings.duckdb_memory_limit) as con:
        result = collect_parts(con, home.lake, CHARGES, cycle.key, shards, CHARGES_TABLES)
        remove_parts(home.lake, CHARGES, cycle.key)
        path = lake_table(home.lake, CHARGES, "charge_lines", cycle=cycle.key)
        by_section = con.sql(
            f"select section, category, count(*) as lines, sum(amount) as amount "
            f"from read_parquet('{path.as_posix()}') group by all order by section, category"
        ).pl()
        accounts = scalar(con, f"select count(distinct account_id) from read_parquet('{path.as_posix()}')")
    return dg.Output(
        None,
        metadata={
            **counts(
                {
                    "charge_lines": result["charge_lines"],
                    "billable_accounts": accounts,
                    "market_shards": len(shards),
                }
            ),
            "dagster/row_count": result["charge_lines"],
            "by_section": markdown_table(by_section),
        },
    )


@dg.graph_asset(
    partitions_def=bill_cycles,
    group_name="billing",
    kinds={"duckdb", "parquet"},
    ins={"rated_usage": dg.AssetIn(dagster_type=dg.Nothing)},
)
def account_charges(rated_usage):
    """Per billable account: recurring charges prorated by actual days, one-time charges, usage per service
    number, discounts, and the taxes and fees of each state the lines are sourced to — each line rounded once by
    its named rule. Computed per market shard (one step each) and collected into one partition."""
    return collect_account_charges(cycle_market_shards(rated_usage).map(charge_market_shard).collect())


@dg.asset(
    partitions_def=bill_cycles,
    group_name="billing",
    kinds={"duckdb", "parquet"},
    deps=[account_charges],
    check_specs=[
        dg.AssetCheckSpec(
            "invoice_totals_equal_their_lines",
            asset="invoices",
            blocking=True,
            description="every invoice total is exactly the sum of its rounded lines",
        ),
        dg.AssetCheckSpec(
            "cycle_revenue_reconciles",
            asset="invoices",
            blocking=True,
            description="Σ invoices = recurring + one-time + usage − discounts + taxes + adjustments + late fees; "
            "usage lines = rated charges within half a cent of rounding per line",
        ),
        dg.AssetCheckSpec(
            "one_invoice_per_billable_account",
            asset="invoices",
            blocking=True,
            description="every account with charges has an invoice or a recorded reason (a suppressed zero bill)",
        ),
        dg.AssetCheckSpec(
            "no_negative_total_without_credit_reason",
            asset="invoices",
            blocking=True,
            description="an invoice total below zero only with a credit line that states its reason",
        ),
    ],
)
def invoices(context: dg.AssetExecutionContext, cdrbill: CdrbillHome):
    """The cycle's finalised invoices, lines, tax lines and balances: gapless numbers assigned once, in one
    transaction with the cycle's adjustments, payments, disputes and late fees; a finalised cycle never changes
    (a re-run numbers nothing again; corrections are credit notes)."""
    home, settings = cdrbill.home(), cdrbill.settings()
    cycle = cdrbill.cycle(context.partition_key)
    reference = cdrbill.reference()
    charge_lines = lake_table(home.lake, CHARGES, "charge_lines", cycle=cycle.key)
    with open_state(home.state_db) as state:
        register_inputs(state, reference.tables())
        result = finalize_cycle(state, charge_lines, cycle, settings)
        exported = export_invoices(state, home.lake, cycle.key)
        register = state.sql(
            "select invoice_number, account_id, total_amount from invoices where cycle = ? order by 1",
            params=[cycle.key],
        ).pl()
    if result.recomputed_differences:
        context.log.warning(
            f"cycle {cycle.key} is final; {result.recomputed_differences} accounts' recomputed "
            "charges differ from their invoices: correct them with credit notes"
        )
    yield dg.Output(
        None,
        metadata={
            **counts(
                {
                    "invoices": result.invoices,
                    "newly_finalized": result.newly_finalized,
                    "invoice_lines": exported["invoice_lines"],
                    "first_number": result.first_number or "",
                    "last_number": result.last_number or "",
                    "total_billed": result.total_amount,
                    "recomputed_differences": result.recomputed_differences,
                }
            ),
            "dagster/row_count": result.invoices,
            "invoice_register": markdown_table(register, 15),
        },
    )
    with session() as con:
        mismatches = invoice_total_mismatches(con, home.lake, cycle.key)
        proof = cycle_reconciliation(con, home.lake, cycle.key)
        uninvoiced = accounts_without_invoice(con, home.lake, cycle.key)
        negative = negative_totals_without_reason(con, home.lake, cycle.key)
    yield dg.AssetCheckResult(
        check_name="invoice_totals_equal_their_lines",
        passed=mismatches.height == 0,
        metadata={
            "mismatched_invoices": dg.MetadataValue.int(mismatches.height),
            "examples": markdown_table(mismatches, 10),
        },
    )
    yield dg.AssetCheckResult(
        check_name="cycle_revenue_reconciles",
        passed=bool(proof["invoices_equal_charges"] and proof["usage_within_rounding"]),
        metadata={k: dg.MetadataValue.text(str(v)) for k, v in proof.items()},
    )
    yield dg.AssetCheckResult(
        check_name="one_invoice_per_billable_account",
        passed=uninvoiced.height == 0,
        metadata={
            "accounts_without_invoice": dg.MetadataValue.int(uninvoiced.height),
            "examples": markdown_table(uninvoiced, 10),
        },  # fmt: skip
    )
    yield dg.AssetCheckResult(
        check_name="no_negative_total_without_credit_reason",
        passed=negative.height == 0,
        metadata={
            "invoices": dg.MetadataValue.int(negative.height),
            "examples": markdown_table(negative, 10),
        },
    )
