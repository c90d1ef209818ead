-- title: Usage by destination
-- question: Where do our customers call: calls, minutes and rated charge per rate card destination and call jurisdiction?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: destination, jurisdiction, calls, seconds, minutes, rated_charge
select
    coalesce(destination, '(none)') as destination,
    jurisdiction,
    count(*) as calls,
    sum(billsec) as seconds,
    round(sum(billsec) / 60, 1) as minutes,
    sum(charge_amount)::decimal(18, 6) as rated_charge
from rated_usage
where cycle = $cycle
    and coalesce(service, 'voice') = 'voice'
group by all
order by calls desc, destination, jurisdiction
