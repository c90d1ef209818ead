-- title: Bounces by status code
-- question: Which bounce status codes did the cycle's e-mails get, hard or soft, and how many accounts were switched to paper?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: kind, status, bounces, invoices, accounts, switched_to_paper
select
    bounces.kind,
    bounces.status,
    count(*) as bounces,
    count(distinct bounces.invoice_number) as invoices,
    count(distinct bounces.account_id) as accounts,
    count(distinct overrides.account_id) as switched_to_paper
from bounces
join deliveries using (invoice_number)
left join delivery_preference_overrides as overrides on overrides.bounce_id = bounces.bounce_id
where deliveries.cycle = $cycle and deliveries.channel = 'email'
group by bounces.kind, bounces.status
order by bounces.kind, bounces.status
