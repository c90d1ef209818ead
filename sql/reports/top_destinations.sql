-- title: Top destinations
-- question: Which called destinations carry the most minutes (network planning and interconnect negotiation)?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- param: top integer = 10  how many destinations
-- columns: destination, calls, accounts, seconds, minutes, rated_charge
select
    coalesce(destination, '(none)') as destination,
    count(*) as calls,
    count(distinct account_id) as accounts,
    sum(billsec) as seconds,
    round(sum(billsec) / 60, 1) as minutes,
    sum(charge_amount)::decimal(18, 6) as rated_charge
from rated_usage
where cycle = $cycle
    and coalesce(service, 'voice') = 'voice'
group by all
order by seconds desc, destination
limit $top
