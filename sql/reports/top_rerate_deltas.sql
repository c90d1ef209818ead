-- title: Largest rerating deltas
-- question: Which events changed most when the cycle was rated again (status, rate row and charge before and after)?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- param: top integer = 20  how many events
-- columns: file_id, line_no, account_id, charged_number, previous_status, new_status, previous_rate_row,
-- columns: new_rate_row, previous_charge, new_charge, delta
select
    file_id,
    line_no,
    account_id,
    charged_number,
    previous_status,
    new_status,
    previous_rate_row,
    new_rate_row,
    previous_charge,
    new_charge,
    delta
from rerate_events
where cycle = $cycle
order by abs(delta) desc, file_id, line_no
limit $top
