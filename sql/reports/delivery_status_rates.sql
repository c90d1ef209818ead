-- title: Delivery failure and bounce rates
-- question: Per channel, what share of deliveries did not end as sent (bounced, failed, returned mail) in the cycle?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: channel, deliveries, sent, not_sent, bounced, failure_percent
select
    channel,
    count(*) as deliveries,
    count(*) filter (where status = 'sent') as sent,
    count(*) filter (where status <> 'sent') as not_sent,
    count(*) filter (where status = 'bounced') as bounced,
    -- to 2 decimals half_up, in integers
    ((count(*) filter (where status <> 'sent') * 20000 + count(*)) // (2 * count(*)) * 0.01)::decimal(18, 2)
        as failure_percent
from deliveries
where cycle = $cycle
group by channel
order by channel
