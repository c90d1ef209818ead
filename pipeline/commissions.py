"""Agent commissions per cycle: each account's revenue (carrier charges net of discounts, never taxes, fees,
adjustments or late fees) × the percent of the agent's most specific commission plan, on billed revenue or on
revenue collected (payments applied this cycle, less their tax share), half_up to cents per account; and the
agent statement that sums them (``lake/commissions/cycle=C``)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipeline.cycles import BillCycle
from pipeline.invoicing import INVOICES
from pipeline.lake import lake_partition, partition_dir, replace_partition

COMMISSIONS = "commissions"
REVENUE_SECTIONS = "('recurring', 'one_time', 'usage', 'discounts')"


def commission_lines(con: duckdb.DuckDBPyConnection, lake: Path, cycle: BillCycle) -> duckdb.DuckDBPyRelation:
    """One row per invoiced or paying account of the cycle with its agent, the commission plan chosen (agent +
    plan + state, then agent + plan, agent + state, agent alone; a tie by id), the billed and collected revenue
    and the commission. Reference tables ``accounts`` and ``commission_plans`` must be registered."""
    folder = lake_partition(lake, INVOICES, cycle=cycle.key)
    return con.sql(
        f"""
        with
        billed as (
            select invoices.account_id, sum(lines.amount) as billed_revenue
            from read_parquet('{(folder / "invoices.parquet").as_posix()}') as invoices
            join read_parquet('{(folder / "invoice_lines.parquet").as_posix()}') as lines using (invoice_number)
            where lines.section in {REVENUE_SECTIONS}
            group by all
        ),
        collected as (
            -- the revenue share of each payment applied: amount × invoice revenue / invoice total, half_up
            select account_id,
                   from_cents(sum(case when invoice_total = 0 then 0 else round_div(
                       (amount * 100)::hugeint * (invoice_revenue * 100)::hugeint, (invoice_total * 100)::hugeint,
                       'half_up') end)) as collected_revenue
            from read_parquet('{(folder / "payment_allocations.parquet").as_posix()}')
            group by all
        ),
        revenue as (
            select account_id, coalesce(billed.billed_revenue, 0) as billed_revenue,
                   coalesce(collected.collected_revenue, 0) as collected_revenue
            from billed full join collected using (account_id)
        ),
        chosen as (
            select
                revenue.*, accounts.agent_id, accounts.plan_id, accounts.service_state,
                commission_plans.commission_plan_id, commission_plans.basis, commission_plans.percent,
                row_number() over (
                    partition by revenue.account_id
                    order by (commission_plans.plan_id is not null)::int * 2 + (commission_plans.state is not null)::int
                        desc, commission_plans.commission_plan_id
                ) as preference
            from revenue
            join accounts using (account_id)
            join commission_plans
                on commission_plans.agent_id = accounts.agent_id
                and coalesce(commission_plans.plan_id, accounts.plan_id) = accounts.plan_id
                and coalesce(commission_plans.state, accounts.service_state) = accounts.service_state
                and commission_plans.valid_from <= ?::date
                and (commission_plans.valid_to is null or commission_plans.valid_to > ?::date)
        )
        select
            ?::varchar as cycle, agent_id, account_id, plan_id, service_state, commission_plan_id, basis, percent,
            billed_revenue, collected_revenue,
            case basis when 'billed' then billed_revenue else collected_revenue end as commission_base,
            from_cents(round_div(
                (case basis when 'billed' then billed_revenue else collected_revenue end * 100)::hugeint
                    * micros(percent), 100 * 1000000, 'half_up')) as commission
        from chosen
        where preference = 1
        order by agent_id, account_id
        """,
        params=[cycle.end, cycle.end, cycle.key],
    )


def compute_commissions(con: duckdb.DuckDBPyConnection, lake: Path, cycle: BillCycle) -> dict[str, int]:
    """Write the cycle's commission lines and agent statements (accounts, revenue, commission per agent)."""
    lines = commission_lines(con, lake, cycle)
    lines.create("commission_lines")
    statements = con.sql(
        """
        select cycle, agent_id, agents.agent_name, count(*) as accounts, sum(billed_revenue) as billed_revenue,
               sum(collected_revenue) as collected_revenue, sum(commission) as commission
        from commission_lines join agents using (agent_id)
        group by all order by agent_id
        """
    )
    return replace_partition(
        lake,
        partition_dir(lake, COMMISSIONS, cycle=cycle.key),
        {"commission_lines": con.sql("select * from commission_lines"), "agent_statements": statements},
    )
