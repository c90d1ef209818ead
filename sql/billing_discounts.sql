-- billing_discounts.sql: the cycle's charge lines + discounts → one discount line per discount, state and
-- tax category of what it reduces (so each tax can see the discounts on its own base), in negative minor units of the account's currency.
--   eligible: the discount's account (or every account when empty), valid on some day of the cycle, the
--     account's tenure at the cycle end at least min_tenure_months (loyalty), and within max_cycles cycles of
--     the month it started (promotions);
--   scope: plan (the plan lines, or one plan by target), product (recurring add-ons, or one product), usage
--     (usage lines, or one service by target), bill (every carrier charge);
--   percent: base × value / 100, half_up per line, all on the undiscounted base, together never more than it;
--   amount: after the percent discounts, the value taken from the scoped lines in order (state, plan first, then
--     tax category) until used up, never more than is left of a line (a bill is never discounted below zero).
-- Inputs: cycle_params, charges (billing_charges.sql), discounts, accounts, account_currency.

create or replace temp table discount_lines as

with

cycle as (
    select * from cycle_params
),

eligible as (
    select
        accounts.account_id,
        discounts.*  exclude (account_id)
    from discounts
    join accounts on discounts.account_id is null or discounts.account_id = accounts.account_id
    cross join cycle
    where discounts.valid_from <= cycle.period_end
        and (discounts.valid_to is null or discounts.valid_to > cycle.period_start)
        and date_diff('month', accounts.activated_on, cycle.period_end + 1) >= coalesce(discounts.min_tenure_months, 0)
        and (discounts.max_cycles is null
             or date_diff('month', date_trunc('month', discounts.valid_from), cycle.period_start) < discounts.max_cycles)
),

scoped as (
    select
        eligible.account_id,
        eligible.discount_id,
        eligible.description,
        eligible.method,
        eligible.value,
        charges.jurisdiction,
        charges.tax_category,
        sum(charges.amount_minor) as base_minor
    from eligible
    join charges
        on charges.account_id = eligible.account_id
        and case eligible.scope
                when 'plan' then charges.category = 'plan' and coalesce(eligible.target, charges.code) = charges.code
                when 'product' then charges.section = 'recurring' and charges.category <> 'plan'
                    and coalesce(eligible.target, charges.code) = charges.code
                when 'usage' then charges.section = 'usage'
                    and coalesce(eligible.target, charges.category) = charges.category
                else true
            end
    group by all
    having sum(charges.amount_minor) > 0
),

percent_raw as (
    select
        *,
        round_div(base_minor * micros(value), 100 * 1000000, 'half_up') as raw_minor
    from scoped
    where method = 'percent'
),

percent_lines as (
    -- several percent discounts on the same lines never take more than the lines (in discount id order)
    select
        * exclude (raw_minor),
        -least(raw_minor, greatest(0, base_minor - coalesce(sum(raw_minor) over (
            partition by account_id, jurisdiction, tax_category order by discount_id
            rows between unbounded preceding and 1 preceding
        ), 0))) as amount_minor
    from percent_raw
),

after_percent as (
    -- amount discounts see the base left after every percent discount of the same lines
    select
        scoped.*,
        scoped.base_minor + coalesce((
            select sum(p.amount_minor) from percent_lines as p
            where p.account_id = scoped.account_id and p.jurisdiction = scoped.jurisdiction
                and p.tax_category = scoped.tax_category
        ), 0) as available_minor
    from scoped
    where method = 'amount'
),

amount_taken as (
    select
        *,
        least(available_minor, greatest(0, round_div(micros(value), unit_micros, 'half_up') - coalesce(sum(available_minor) over (
            partition by account_id, discount_id order by jurisdiction, tax_category <> 'plan', tax_category
            rows between unbounded preceding and 1 preceding
        ), 0))) as wanted_minor
    from after_percent
    join account_currency using (account_id)
),

amount_lines as (
    -- several amount discounts on the same lines never take more than is left of them
    select
        *,
        -least(wanted_minor, greatest(0, available_minor - coalesce(sum(wanted_minor) over (
            partition by account_id, jurisdiction, tax_category order by discount_id
            rows between unbounded preceding and 1 preceding
        ), 0))) as amount_minor
    from amount_taken
)

select
    account_id,
    'discounts' as section,
    'discount' as category,
    tax_category,
    (select carrier_name from cycle) as provider,
    null::varchar as service_number,
    jurisdiction,
    discount_id as code,
    description,
    null::decimal(18, 6) as quantity,
    null::varchar as unit,
    base_minor as taxable_base_minor,
    value as rate,
    amount_minor
from (
    select * exclude (available_minor, wanted_minor) from amount_lines
    union all by name
    select * from percent_lines
)
