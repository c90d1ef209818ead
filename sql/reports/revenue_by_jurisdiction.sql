-- title: Revenue by call jurisdiction
-- question: What did usage bill per call jurisdiction (local, intrastate, interstate, international, toll_free, …), and the rest of the bill per section, so that the rows sum to the invoice register?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: section, call_jurisdiction, accounts, lines, billed
-- from: revenue_lines (call_jurisdiction: a usage line's call jurisdiction or service)
select
    section,
    call_jurisdiction,
    count(distinct account_id) as accounts,
    count(*) as lines,
    sum(amount)::decimal(18, 2) as billed
from revenue_lines
where cycle = $cycle
group by all
order by billed desc, call_jurisdiction
