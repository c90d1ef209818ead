-- title: Credit notes
-- question: Which credit notes were issued against the cycle's invoices, why, by whom approved, and on which later invoice do they show?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: credit_note_number, invoice_number, account_id, issue_date, amount, currency, reason, approved_by,
-- columns: carried_on_invoice
select
    credit_notes.credit_note_number,
    credit_notes.invoice_number,
    credit_notes.account_id,
    credit_notes.issue_date,
    credit_notes.amount,
    credit_notes.currency,
    credit_notes.reason,
    credit_notes.approved_by,
    credit_notes.carried_on_invoice
from credit_notes
join invoices using (invoice_number)
where invoices.cycle = $cycle
order by credit_notes.sequence_no
