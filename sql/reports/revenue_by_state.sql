-- title: Revenue by state
-- question: How much did the accounts of each service state bill in the cycle (every invoice line, taxes included, so the rows sum to the invoice register)?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: service_state, accounts, invoices, charges, taxes_and_fees, billed
-- from: revenue_lines (warehouse: every invoice line with its account's state, agent and plan)
select
    revenue_lines.service_state,
    count(distinct revenue_lines.account_id) as accounts,
    count(distinct revenue_lines.invoice_number) as invoices,
    sum(amount) filter (where not is_tax_or_fee)::decimal(18, 2) as charges,
    coalesce(sum(amount) filter (where is_tax_or_fee), 0)::decimal(18, 2) as taxes_and_fees,
    sum(amount)::decimal(18, 2) as billed
from revenue_lines
where revenue_lines.cycle = $cycle
group by all
order by billed desc, 1
