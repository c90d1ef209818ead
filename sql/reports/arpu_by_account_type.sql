-- title: Average revenue per account
-- question: What is the average, smallest and largest bill per account type (residential, business) in the cycle?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: account_type, invoices, billed, average_bill, smallest_bill, largest_bill
select
    accounts.account_type,
    count(*) as invoices,
    sum(invoices.total_amount)::decimal(18, 2) as billed,
    -- average to the cent, half_up: Σ cents × 1 / n in integers
    ((sum(invoices.total_amount * 100)::hugeint * 2 + count(*)) // (2 * count(*)) * 0.01)::decimal(18, 2) as average_bill,
    min(invoices.total_amount) as smallest_bill,
    max(invoices.total_amount) as largest_bill
from invoices
join accounts using (account_id)
where invoices.cycle = $cycle
group by accounts.account_type
order by billed desc
