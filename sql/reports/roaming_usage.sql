-- title: Roaming usage
-- question: How much did our customers use abroad, per visited country and roaming zone, and what surcharge did it carry?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: visited_country, roaming_zone, service, events, accounts, units, rated_charge
select
    visited_country,
    roaming_zone,
    coalesce(service, 'voice') as service,
    count(*) as events,
    count(distinct account_id) as accounts,
    sum(units) as units,
    sum(charge_amount)::decimal(18, 6) as rated_charge
from rated_usage
where cycle = $cycle
    and visited_country is not null
group by all
order by events desc, visited_country
