-- title: Suppressed bills
-- question: Which accounts had charges in the cycle but got no invoice, and why?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: account_id, account_name, reason, recorded_at
select
    suppressed_bills.account_id,
    accounts.account_name,
    suppressed_bills.reason,
    suppressed_bills.recorded_at
from suppressed_bills
left join accounts using (account_id)
where suppressed_bills.cycle = $cycle
order by suppressed_bills.account_id
