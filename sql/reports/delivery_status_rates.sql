-- title: Delivery failure and bounce rates
-- question: Per channel, what share of the cycle's deliveries did not end as sent, and how many e-mails bounced (hard or soft)?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: channel, deliveries, sent, not_sent, bounced_hard, bounced_soft, failure_percent
with

bounced as (
    select invoice_number, bool_or(kind = 'hard') as hard, bool_or(kind = 'soft') as soft
    from bounces
    where invoice_number is not null
    group by invoice_number
)

select
    deliveries.channel,
    count(*) as deliveries,
    count(*) filter (where deliveries.status = 'sent') as sent,
    count(*) filter (where deliveries.status <> 'sent') as not_sent,
    count(*) filter (where bounced.hard) as bounced_hard,
    count(*) filter (where bounced.soft and not bounced.hard) as bounced_soft,
    -- not sent or bounced, in percent to 2 decimals half_up, in integers
    ((count(*) filter (where deliveries.status <> 'sent' or bounced.hard or bounced.soft) * 20000 + count(*))
        // (2 * count(*)) * 0.01)::decimal(18, 2) as failure_percent
from deliveries
left join bounced using (invoice_number)
where deliveries.cycle = $cycle
group by deliveries.channel
order by deliveries.channel
