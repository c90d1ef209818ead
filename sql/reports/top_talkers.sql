-- title: Top talkers
-- question: Which accounts used the most call minutes in the cycle?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- param: top integer = 10  how many accounts
-- columns: account_id, account_name, plan_id, calls, lines, seconds, minutes, rated_charge
select
    rated_usage.account_id,
    accounts.account_name,
    accounts.plan_id,
    count(*) as calls,
    count(distinct rated_usage.charged_number) as lines,
    sum(rated_usage.billsec) as seconds,
    round(sum(rated_usage.billsec) / 60, 1) as minutes,
    sum(rated_usage.charge_amount)::decimal(18, 6) as rated_charge
from rated_usage
left join accounts using (account_id)
where rated_usage.cycle = $cycle
    and coalesce(rated_usage.service, 'voice') = 'voice'
group by all
order by seconds desc, rated_usage.account_id
limit $top
