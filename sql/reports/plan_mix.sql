-- title: Plan mix
-- question: How many accounts are on each plan at the end of the cycle, and what does each plan bill on average?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: plan_id, plan_name, monthly_charge, active_accounts, invoices, billed, average_bill
with

period as (
    select cast($cycle || '-01' as date) as first_day, last_day(cast($cycle || '-01' as date)) as last_day
),

active as (
    select accounts.*
    from accounts, period
    where accounts.activated_on <= period.last_day
        and (accounts.deactivated_on is null or accounts.deactivated_on >= period.last_day)
),

billed as (
    select account_id, total_amount from invoices where cycle = $cycle
)

select
    plans.plan_id,
    plans.plan_name,
    plans.monthly_charge,
    count(active.account_id) as active_accounts,
    count(billed.account_id) as invoices,
    coalesce(sum(billed.total_amount), 0)::decimal(18, 2) as billed,
    case when count(billed.account_id) > 0 then
        ((sum(billed.total_amount * 100)::hugeint * 2 + count(billed.account_id)) // (2 * count(billed.account_id))
            * 0.01)::decimal(18, 2)
    end as average_bill
from plans
left join active using (plan_id)
left join billed on billed.account_id = active.account_id
group by plans.plan_id, plans.plan_name, plans.monthly_charge
order by active_accounts desc, plans.plan_id
