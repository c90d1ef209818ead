-- title: Usage by service
-- question: How many events, units and how much rated charge did each service (voice, sms, mms, data, vas) carry in the cycle?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: service, events, accounts, units, billed_units, included_units, rated_charge
select
    coalesce(service, 'voice') as service,
    count(*) as events,
    count(distinct account_id) as accounts,
    sum(units) as units,
    sum(billed_units) as billed_units,
    sum(included_units) as included_units,
    sum(charge_amount)::decimal(18, 6) as rated_charge
from rated_usage
where cycle = $cycle
group by all
order by rated_charge desc, service
