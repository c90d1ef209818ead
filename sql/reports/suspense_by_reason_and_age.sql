-- title: Suspense by reason and age
-- question: How many records sit in suspense for each reason, how old are their calls, and what fixes them?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: stage, reason, records, age_0_30, age_31_60, age_61_90, age_over_90, age_unknown, meaning, fix
select
    suspense.stage,
    suspense.reason,
    count(*) as records,
    count(*) filter (where age_days <= 30) as age_0_30,
    count(*) filter (where age_days > 30 and age_days <= 60) as age_31_60,
    count(*) filter (where age_days > 60 and age_days <= 90) as age_61_90,
    count(*) filter (where age_days > 90) as age_over_90,
    count(*) filter (where age_days is null) as age_unknown,
    suspense_reasons.meaning,
    suspense_reasons.fix
from suspense
left join suspense_reasons on suspense_reasons.code = suspense.reason
where suspense.cycle = $cycle
group by all
order by records desc, suspense.reason
