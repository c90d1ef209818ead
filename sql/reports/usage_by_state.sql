-- title: Usage by service state
-- question: How much usage did the lines of each service state generate in the cycle?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: service_state, events, accounts, lines, voice_seconds, rated_charge
select
    service_state,
    count(*) as events,
    count(distinct account_id) as accounts,
    count(distinct charged_number) as lines,
    sum(billsec) as voice_seconds,
    sum(charge_amount)::decimal(18, 6) as rated_charge
from rated_usage
where cycle = $cycle
group by service_state
order by events desc, service_state
