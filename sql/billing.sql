-- billing.sql: a cycle's rated events + accounts, plans and taxes → the charge lines of every billable
-- account (before invoice numbering). Amounts are whole cents, each line rounded once by a named rule:
--   recurring: plan monthly charge × active days / days in cycle, half_up (proration by actual days);
--   usage: Σ rated event charges of one service number, half_up to cents;
--   taxes: rate % × Σ lines sourced to the tax's state (usage by the line's service state, the plan by the
--          account's service state), rounded by the tax's own method; zero taxes are not billed.
-- Inputs: cycle_params (cycle, period_start, period_end, cycle_days), rated, accounts, plans, taxes.

with

cycle as (
    select * from cycle_params
),

active_accounts as (
    select
        accounts.account_id,
        accounts.service_state,
        plans.plan_id,
        plans.plan_name,
        plans.monthly_charge,
        greatest(accounts.activated_on, cycle.period_start) as active_from,
        least(coalesce(accounts.deactivated_on - 1, cycle.period_end), cycle.period_end) as active_to,
        cycle.cycle_days
    from accounts
    join plans using (plan_id)
    cross join cycle
    where accounts.activated_on <= cycle.period_end
        and (accounts.deactivated_on is null or accounts.deactivated_on > cycle.period_start)
),

recurring_lines as (
    select
        account_id,
        'recurring' as section,
        'plan' as category,
        null::varchar as service_number,
        service_state as jurisdiction,
        plan_id as code,
        plan_name || ' — monthly charge'
            || case when active_to - active_from + 1 < cycle_days
                    then ' (' || (active_to - active_from + 1) || ' of ' || cycle_days || ' days)'
                    else '' end as description,
        (active_to - active_from + 1)::decimal(18, 6) as quantity,
        'day' as unit,
        null::decimal(18, 2) as taxable_base,
        monthly_charge as rate,
        round_div((monthly_charge * 100)::hugeint * (active_to - active_from + 1), cycle_days, 'half_up')
            as amount_cents
    from active_accounts
),

usage_by_number as (
    select
        account_id,
        charged_number,
        service_state,
        count(*) as calls,
        sum(billed_seconds) as billed_seconds,
        sum(micros(charge_amount)) as charge_micros
    from rated
    group by all
),

usage_lines as (
    select
        account_id,
        'usage' as section,
        'voice' as category,
        charged_number as service_number,
        service_state as jurisdiction,
        null::varchar as code,
        'Calls from '
            || case when charged_number like '+1%' and length(charged_number) = 12
                    then '+1 ' || substr(charged_number, 3, 3) || '-' || substr(charged_number, 6, 3) || '-'
                         || substr(charged_number, 9, 4)
                    else charged_number end
            || ' (' || calls || case when calls = 1 then ' call, ' else ' calls, ' end || (billed_seconds // 60) || ' min ' || (billed_seconds % 60)
            || ' s billed)' as description,
        calls::decimal(18, 6) as quantity,
        'call' as unit,
        null::decimal(18, 2) as taxable_base,
        null::decimal(18, 6) as rate,
        round_div(charge_micros, 10000, 'half_up') as amount_cents
    from usage_by_number
),

charge_lines as (
    select * from recurring_lines
    union all by name
    select * from usage_lines
),

taxable_bases as (
    select
        account_id,
        jurisdiction,
        sum(amount_cents) as base_cents
    from charge_lines
    group by all
),

tax_lines as (
    select
        taxable_bases.account_id,
        'taxes' as section,
        taxes.kind as category,
        null::varchar as service_number,
        taxes.state as jurisdiction,
        taxes.tax_code as code,
        taxes.tax_name || ' ' || rtrim(rtrim(taxes.rate_percent::varchar, '0'), '.') || '%' as description,
        null::decimal(18, 6) as quantity,
        null::varchar as unit,
        from_cents(taxable_bases.base_cents) as taxable_base,
        taxes.rate_percent as rate,
        round_div(taxable_bases.base_cents * micros(taxes.rate_percent), 100 * 1000000, taxes.rounding_method)
            as amount_cents
    from taxable_bases
    cross join cycle
    join taxes
        on taxes.state = taxable_bases.jurisdiction
        and taxes.valid_from <= cycle.period_end
        and (taxes.valid_to is null or taxes.valid_to > cycle.period_end)
),

all_lines as (
    select * from charge_lines
    union all by name
    select * from tax_lines where amount_cents <> 0
)

select
    account_id,
    row_number() over (
        partition by account_id
        order by
            case section when 'recurring' then 1 when 'usage' then 2 else 3 end,
            service_number nulls first,
            jurisdiction,
            code
    )::integer as line_no,
    section,
    category,
    service_number,
    jurisdiction,
    code,
    description,
    quantity,
    unit,
    taxable_base,
    rate,
    from_cents(amount_cents) as amount
from all_lines
order by account_id, line_no
