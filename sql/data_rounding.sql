-- data_rounding.sql: the cycle's rated data sessions of plans that round data per cycle → one data rounding
-- charge per account, service number and price: the cycle's charged bytes rounded up ONCE to the plan's unit.
-- Inputs: rating_outcomes (rated events of the cycle), plan_usage_settings (reference: data_rounding, data_unit).
-- Rules (docs/GLOSSARY.md, "Data rounding"):
-- * a plan with data_rounding = 'cycle' rates each data session on its exact bytes (sql/rating.sql), and
--   allowances are consumed in session order on those bytes;
-- * per account, service number and price (rate card, prefix, destination, rate per unit, unit, roaming
--   surcharge), the sessions' charged bytes (after allowances) are summed and rounded up to the plan's unit
--   (KB = 1024 bytes, MB = 1,048,576 bytes): rounding_bytes = rounded − charged, 0 ≤ rounding_bytes < one unit;
-- * the remainder costs rounding_bytes × (rate per unit + roaming surcharge) / unit, exactly, rounded once to
--   cents, half_up. A group without a remainder has its row too (rounding_bytes 0: `cdrbill explain` shows it;
--   the bill run adds no line for it); a rate without a base price (band-only) has none.

with

cycle_rounding_plans as (
    select
        plan_id,
        data_unit,
        case data_unit when 'MB' then 1048576 when 'KB' then 1024 else 1 end as data_unit_bytes
    from plan_usage_settings
    where data_rounding = 'cycle'
),

sessions as (
    select
        rating_outcomes.account_id,
        rating_outcomes.charged_number,
        rating_outcomes.service_state,
        rating_outcomes.plan_id,
        rating_outcomes.rate_card_id,
        rating_outcomes.prefix,
        rating_outcomes.destination,
        rating_outcomes.rate_per_unit,
        rating_outcomes.unit_seconds as rate_unit,
        coalesce(rating_outcomes.roaming_surcharge, 0) as roaming_surcharge,
        cycle_rounding_plans.data_unit,
        cycle_rounding_plans.data_unit_bytes,
        rating_outcomes.charged_units
    from rating_outcomes
    join cycle_rounding_plans using (plan_id)
    where rating_outcomes.rating_reason is null
        and rating_outcomes.service = 'data'
        and rating_outcomes.rate_per_unit is not null
),

cycle_totals as (
    select
        account_id,
        charged_number,
        service_state,
        plan_id,
        rate_card_id,
        prefix,
        destination,
        rate_per_unit,
        rate_unit,
        roaming_surcharge,
        data_unit,
        data_unit_bytes,
        count(*) as sessions,
        sum(charged_units)::bigint as charged_bytes
    from sessions
    group by all
),

rounded as (
    select
        *,
        (charged_bytes + data_unit_bytes - 1) // data_unit_bytes * data_unit_bytes as rounded_bytes
    from cycle_totals
)

select
    account_id,
    charged_number,
    service_state,
    plan_id,
    rate_card_id,
    prefix,
    destination,
    data_unit,
    sessions,
    charged_bytes,
    rounded_bytes,
    rounded_bytes - charged_bytes as rounding_bytes,
    rate_per_unit,
    rate_unit,
    roaming_surcharge::decimal(18, 6) as roaming_surcharge,
    from_cents(
        round_div(
            (rounded_bytes - charged_bytes)::hugeint * (micros(rate_per_unit) + micros(roaming_surcharge)),
            rate_unit * 10000,
            'half_up'
        )
    ) as charge_amount
from rounded
