-- title: Revenue by call jurisdiction
-- question: What did usage bill per call jurisdiction (local, intrastate, interstate, international, toll_free, …), and the rest of the bill per section, so that the rows sum to the invoice register?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: section, call_jurisdiction, accounts, lines, billed
with

cycle_lines as (
    select
        section,
        -- a usage line's code is its call jurisdiction (voice) or its service
        case when section = 'usage' then coalesce(code, category) else '(not usage)' end as call_jurisdiction,
        account_id,
        amount
    from invoice_lines
    where cycle = $cycle
)

select
    section,
    call_jurisdiction,
    count(distinct account_id) as accounts,
    count(*) as lines,
    sum(amount)::decimal(18, 2) as billed
from cycle_lines
group by all
order by billed desc, call_jurisdiction
