-- title: Late fees
-- question: Which accounts were charged a late fee in the cycle, on what past-due amount?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: invoice_number, account_id, description, taxable_base, rate, late_fee, past_due
select
    invoice_lines.invoice_number,
    invoice_lines.account_id,
    invoice_lines.description,
    invoice_lines.taxable_base,
    invoice_lines.rate,
    invoice_lines.amount as late_fee,
    invoice_balances.past_due
from invoice_lines
left join invoice_balances using (invoice_number)
where invoice_lines.cycle = $cycle
    and invoice_lines.section = 'late_fees'
order by invoice_lines.amount desc, invoice_lines.invoice_number
