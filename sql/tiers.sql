-- tiers.sql: the cycle's rated events → one tier charge per account, plan, service and tier table on the
-- cycle's total charged units (after allowances).
-- Inputs: rating_outcomes (rated events of the cycle), tiers (reference: tier rows from_units → price per unit).
-- Rules: graduated — each tier prices the units inside it: Σ (min(total, next tier's from) − from) × price;
-- volume — every unit at the price of the highest tier the total reaches (from_units ≤ total).
-- The exact amount is rounded once, to cents, half_up. Tiered usage is priced by a zero-rate card, so an
-- event's own charge is 0 and the tier charge is the usage charge.

with

totals as (
    select
        account_id,
        plan_id,
        service,
        sum(charged_units)::bigint as total_units
    from rating_outcomes
    where rating_reason is null
    group by all
),

tier_rows as (
    select
        *,
        lead(from_units) over (partition by tier_id order by from_units) as next_from
    from tiers
),

priced_tiers as (
    select
        totals.account_id,
        tier_rows.tier_id,
        tier_rows.mode,
        totals.plan_id,
        totals.service,
        totals.total_units,
        case tier_rows.mode
            when 'graduated' then
                greatest(least(totals.total_units, coalesce(tier_rows.next_from, totals.total_units))
                         - tier_rows.from_units, 0)
            when 'volume' then
                case when totals.total_units >= tier_rows.from_units
                    and (tier_rows.next_from is null or totals.total_units < tier_rows.next_from)
                    then totals.total_units else 0 end
        end as tier_units,
        micros(tier_rows.price_per_unit) as price_micros
    from totals
    join tier_rows
        on tier_rows.plan_id = totals.plan_id
        and tier_rows.service = totals.service
)

select
    account_id,
    tier_id,
    mode,
    plan_id,
    service,
    total_units,
    string_agg(tier_units || ' × ' || from_micros(price_micros), ' + ' order by price_micros desc)
        filter (where tier_units > 0) as tier_breakdown,
    from_cents(round_div(sum(tier_units * price_micros), 10000, 'half_up')) as charge_amount
from priced_tiers
group by all
