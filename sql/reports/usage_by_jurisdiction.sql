-- title: Usage by call jurisdiction
-- question: How are the cycle's calls split between local, intrastate, interstate, international, toll-free, premium and N11?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: jurisdiction, calls, accounts, seconds, minutes, rated_charge
select
    jurisdiction,
    count(*) as calls,
    count(distinct account_id) as accounts,
    sum(billsec) as seconds,
    round(sum(billsec) / 60, 1) as minutes,
    sum(charge_amount)::decimal(18, 6) as rated_charge
from rated_usage
where cycle = $cycle
    and coalesce(service, 'voice') = 'voice'
group by jurisdiction
order by calls desc, jurisdiction
