-- title: Usage rated at zero
-- question: Which rated events cost nothing, and why (toll-free, included in an allowance, a zero rate)?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: service, jurisdiction, why_free, events, units
select
    coalesce(service, 'voice') as service,
    jurisdiction,
    case
        when allowance_id is not null and coalesce(charged_units, 0) = 0 then 'allowance'
        when jurisdiction = 'toll_free' then 'toll_free'
        else 'zero rate'
    end as why_free,
    count(*) as events,
    sum(units) as units
from rated_usage
where cycle = $cycle
    and charge_amount = 0
group by all
order by events desc, service, jurisdiction
