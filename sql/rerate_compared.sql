-- rerate_compared.sql: a cycle's previous rating (previous_fact, previous_suspended: its files as they were before
-- the rerate) beside its new rating (rating_outcomes) → one row per event, both outcomes side by side, for the
-- per-event report (sql/rerate_deltas.sql) and the per-account deltas to come from one join.
-- Rule: nothing lost — a previously rated event without an outcome in the new rating fails the rerate (its charge
-- would vanish from the report and the deltas), it is never dropped. A previously rated event's account and number
-- are its new outcome's (the same normalised event, by key); a previously suspended one keeps its own.
-- previous_rated / new_rated: true rated, false suspended, null no such event on that side.

with

previous as (
    select
        file_id,
        line_no,
        null::varchar as account_id,
        null::varchar as charged_number,
        true as is_rated,
        charge_amount,
        rate_card_id,
        prefix
    from previous_fact
    union all
    select file_id, line_no, account_id, charged_number, false, null, null, null
    from previous_suspended
),

current as (
    select
        file_id,
        line_no,
        account_id,
        charged_number,
        service_state,
        service,
        jurisdiction,
        rating_reason is null as is_rated,
        charge_amount,
        rate_card_id,
        prefix
    from rating_outcomes
)

select
    file_id,
    line_no,
    coalesce(current.account_id, previous.account_id) as account_id,
    coalesce(current.charged_number, previous.charged_number) as charged_number,
    current.service_state,
    current.service,
    current.jurisdiction,
    previous.is_rated as previous_rated,
    current.is_rated as new_rated,
    previous.charge_amount as previous_charge,
    current.charge_amount as new_charge,
    previous.rate_card_id as previous_rate_card_id,
    previous.prefix as previous_prefix,
    current.rate_card_id as new_rate_card_id,
    current.prefix as new_prefix
from current
full outer join previous using (file_id, line_no)
where case
    when current.file_id is null and previous.is_rated then error(
        'previously rated event ' || file_id || ':' || line_no || ' has no outcome in the new rating: '
        || 'its charge would be lost. Fix: report this, then rerate')
    else true
end
