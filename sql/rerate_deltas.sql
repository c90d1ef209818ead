-- rerate_deltas.sql: a cycle's previous rating (previous_rated, previous_suspended) and its new rating
-- (rerate_outcomes: rating_outcomes as rerating reads it) → one row per event whose charge, status or rate row changed.
-- Rule: delta = new charge − previous charge (a missing or suspended side counts 0); exact, 6 decimals.

with

previous as (
    select file_id, line_no, account_id, charged_number, 'rated' as status, charge_amount, rate_card_id, prefix
    from previous_rated
    union all
    select file_id, line_no, account_id, charged_number, 'suspended' as status, null, null, null
    from previous_suspended
),

current as (
    select
        file_id,
        line_no,
        account_id,
        charged_number,
        case when rating_reason is null then 'rated' else 'suspended' end as status,
        charge_amount,
        rate_card_id,
        prefix
    from rerate_outcomes
)

select
    file_id,
    line_no,
    coalesce(current.account_id, previous.account_id) as account_id,
    coalesce(current.charged_number, previous.charged_number) as charged_number,
    previous.status as previous_status,
    current.status as new_status,
    previous.rate_card_id || ':' || coalesce(previous.prefix, '*') as previous_rate_row,
    current.rate_card_id || ':' || coalesce(current.prefix, '*') as new_rate_row,
    previous.charge_amount as previous_charge,
    current.charge_amount as new_charge,
    (coalesce(current.charge_amount, 0) - coalesce(previous.charge_amount, 0))::decimal(18, 6) as delta
from current
full outer join previous using (file_id, line_no)
where previous.status is distinct from current.status
    or previous.charge_amount is distinct from current.charge_amount
    or previous.rate_card_id is distinct from current.rate_card_id
    or previous.prefix is distinct from current.prefix
