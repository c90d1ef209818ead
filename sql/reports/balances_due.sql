-- title: Balances due
-- question: What does each invoice of the cycle ask the customer to pay: previous balance, payments, credit notes, current charges, amount due, disputed and past-due parts?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: invoice_number, account_id, previous_balance, payments, credit_notes, balance_forward,
-- columns: current_charges, amount_due, disputed_held, past_due, due_date
select
    invoices.invoice_number,
    invoices.account_id,
    invoice_balances.previous_balance,
    invoice_balances.payments,
    invoice_balances.credit_notes,
    invoice_balances.balance_forward,
    invoice_balances.current_charges,
    invoice_balances.amount_due,
    invoice_balances.disputed_held,
    invoice_balances.past_due,
    invoices.due_date
from invoices
join invoice_balances using (invoice_number)
where invoices.cycle = $cycle
order by invoice_balances.amount_due desc, invoices.invoice_number
