-- title: Recycled suspense by previous reason
-- question: Of the suspended records recycled after a fix, for each reason they were suspended for, how many were rated, how many are still in suspense, and what did they charge?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: previous_stage, previous_reason, records_recycled, rated_after_recycling, still_suspended, other_outcome, rated_charge, fix
with recycled as (
    select file_id, line_no, cycle, previous_stage, previous_reason
    from recycled_records
    where cycle = $cycle
),

-- a record is rated at most once per cycle; the charge is summed per record before joining
rated_records as (
    select file_id, line_no, cycle, sum(charge_amount) as charge_amount
    from rated_usage
    where cycle = $cycle
    group by all
),

suspended_records as (
    select distinct file_id, line_no, cycle
    from suspense
    where cycle = $cycle
),

outcomes as (
    select
        recycled.previous_stage,
        recycled.previous_reason,
        rated_records.file_id is not null as is_rated,
        suspended_records.file_id is not null as is_still_suspended,
        rated_records.charge_amount
    from recycled
    left join rated_records using (file_id, line_no, cycle)
    left join suspended_records using (file_id, line_no, cycle)
)

select
    outcomes.previous_stage,
    outcomes.previous_reason,
    count(*) as records_recycled,
    count(*) filter (where is_rated) as rated_after_recycling,
    count(*) filter (where is_still_suspended) as still_suspended,
    -- discarded or a duplicate after recycling, or read again but the cycle not yet rebuilt
    count(*) filter (where not is_rated and not is_still_suspended) as other_outcome,
    coalesce(sum(outcomes.charge_amount), 0)::decimal(18, 6) as rated_charge,
    suspense_reasons.fix
from outcomes
left join suspense_reasons on suspense_reasons.code = outcomes.previous_reason
group by all
order by records_recycled desc, outcomes.previous_reason
