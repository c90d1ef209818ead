-- title: Top called numbers
-- question: Which numbers are called most often (fraud and traffic pumping screening)?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- param: top integer = 10  how many numbers
-- columns: called_number, jurisdiction, calls, calling_accounts, seconds, rated_charge
select
    called_number,
    jurisdiction,
    count(*) as calls,
    count(distinct account_id) as calling_accounts,
    sum(billsec) as seconds,
    sum(charge_amount)::decimal(18, 6) as rated_charge
from rated_usage
where cycle = $cycle
    and called_number is not null
group by all
order by calls desc, seconds desc, called_number
limit $top
