-- title: Payment reminders by level
-- question: How many reminders of each dunning level went out in the cycle's runs, by which channel, on how much past-due money?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: level, channel, reminders, accounts, past_due_amount
select
    level,
    channel,
    count(*) as reminders,
    count(distinct account_id) as accounts,
    sum(past_due_amount)::decimal(18, 2) as past_due_amount
from payment_reminders
where cycle = $cycle
group by level, channel
order by min(days_past_due), channel
