-- title: Revenue by service
-- question: What did the cycle bill for each service (voice, sms, data … usage; plans and products; fees, taxes, discounts), so that the rows sum to the invoice register?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: service, accounts, lines, billed
-- from: revenue_lines (revenue_service: usage lines by their service, every other line by its section)
select
    revenue_service as service,
    count(distinct account_id) as accounts,
    count(*) as lines,
    sum(amount)::decimal(18, 2) as billed
from revenue_lines
where cycle = $cycle
group by service
order by billed desc, service
