-- billing_charges.sql: a cycle's rated events + accounts, plan changes, products, subscriptions, orders and
-- equipment → the carrier's charge lines of every billable account (recurring, one-time, usage), in whole
-- minor units of the account's currency (account_currency.unit_micros: USD cents, JPY yen, BHD fils), each
-- rounded once by a named rule:
--   recurring: monthly charge × quantity × active days / days of the period, half_up (proration by actual
--     days). Billed in arrears: the days of this cycle. Billed in advance: the whole next cycle (as known
--     now), plus this cycle's days minus the days the previous bill charged in advance (a product in service
--     when this cycle began was billed the whole cycle in advance, as its end date is entered in the cycle it
--     happens): a new product is caught up, an ended one is credited for its unused days.
--   one-time: the order's amount, or an equipment sale's price, in the cycle of its date;
--   usage: Σ rated event charges of one service number, service and call jurisdiction, half_up to the minor unit; the
--     description shows the units a plan allowance included at no charge and the units charged (a call that
--     crosses the allowance counts in both: rating split it);
--   tier charges: one usage line per account and tier table (category '<service>_tier', taxed as its
--     service: tax category '<service>'), the amount rating priced on the cycle total (whole cents, rounded
--     half_up in sql/tiers.sql; half_up again to the account's minor unit, a no-op unless it is coarser than a
--     cent, e.g. JPY), sourced to the account's service state.
--   data rounding: one usage line per account, service number and price of a plan that rounds data per cycle
--     (category 'data_rounding', tax category 'data'): the remainder of the cycle's charged bytes rounded up
--     to the plan's unit, as rating priced it (whole cents, half_up in sql/data_rounding.sql; half_up again to
--     the account's minor unit), sourced to the number's service state.
-- Inputs: cycle_params (cycle, period_start, period_end, cycle_days, next_start, next_end, next_days,
-- carrier_name), rated, tier_charges, data_rounding, account_currency, accounts, service_numbers, plans, plan_changes, products, subscriptions, orders,
-- equipment.

create or replace temp table charges as

with

cycle as (
    select * from cycle_params
),

ordered_changes as (
    select
        plan_changes.*,
        row_number() over (partition by account_id order by effective_on) as change_no,
        lead(effective_on) over (partition by account_id order by effective_on) as next_change_on
    from plan_changes
),

plan_periods as (
    -- the plan before the first change (or the only plan), then each change's new plan until the next one
    select
        accounts.account_id,
        coalesce(first_change.old_plan_id, accounts.plan_id) as item_code,
        accounts.activated_on as valid_from,
        coalesce(first_change.effective_on, accounts.deactivated_on) as valid_to
    from accounts
    left join ordered_changes as first_change
        on first_change.account_id = accounts.account_id and first_change.change_no = 1
    union all
    select
        ordered_changes.account_id,
        ordered_changes.new_plan_id as item_code,
        ordered_changes.effective_on as valid_from,
        coalesce(ordered_changes.next_change_on, accounts.deactivated_on) as valid_to
    from ordered_changes
    join accounts using (account_id)
),

recurring_items as (
    select
        plan_periods.account_id,
        'plan' as category,
        cycle.carrier_name as provider,
        null::varchar as service_number,
        plan_periods.item_code,
        plans.plan_name as item_name,
        plans.monthly_charge,
        1 as quantity,
        'arrears' as billed,
        plan_periods.valid_from,
        plan_periods.valid_to
    from plan_periods
    join plans on plans.plan_id = plan_periods.item_code
    cross join cycle
    union all
    select
        subscriptions.account_id,
        products.product_type as category,
        products.provider,
        subscriptions.service_number,
        products.product_id as item_code,
        products.product_name as item_name,
        products.monthly_charge,
        subscriptions.quantity,
        products.billed,
        subscriptions.valid_from,
        least(subscriptions.valid_to, accounts.deactivated_on) as valid_to
    from subscriptions
    join products using (product_id)
    join accounts using (account_id)
    union all
    select
        equipment.account_id,
        'equipment_lease' as category,
        cycle.carrier_name as provider,
        null::varchar as service_number,
        equipment.serial_number as item_code,
        'Equipment lease: ' || equipment.model || ', S/N ' || equipment.serial_number as item_name,
        equipment.price as monthly_charge,
        1 as quantity,
        'arrears' as billed,
        equipment.valid_from,
        least(equipment.valid_to, accounts.deactivated_on) as valid_to
    from equipment
    join accounts using (account_id)
    cross join cycle
    where equipment.ownership = 'lease'
),

recurring_days as (
    select
        recurring_items.*,
        greatest(0, least(coalesce(valid_to, next_start), next_start) - greatest(valid_from, period_start))
            as cycle_active_days,
        greatest(0, least(coalesce(valid_to, next_end + 1), next_end + 1) - greatest(valid_from, next_start))
            as next_active_days,
        case when valid_from < period_start and (valid_to is null or valid_to > period_start) then cycle_days
             else 0 end as billed_in_advance_days,
        cycle.*
    from recurring_items
    cross join cycle
),

recurring_parts as (
    -- arrears: this cycle's days; advance: this cycle's correction, then the next cycle
    select
        *,
        'this' as part,
        cycle_active_days as days,
        cycle_days as period_days,
        greatest(valid_from, period_start) as part_from,
        least(coalesce(valid_to, next_start), next_start) - 1 as part_to
    from recurring_days
    where billed = 'arrears' and cycle_active_days > 0
    union all
    select
        *,
        'correction' as part,
        cycle_active_days - billed_in_advance_days as days,
        cycle_days as period_days,
        case when cycle_active_days < billed_in_advance_days
             then least(coalesce(valid_to, next_start), next_start) else greatest(valid_from, period_start) end
            as part_from,
        case when cycle_active_days < billed_in_advance_days
             then period_end else least(coalesce(valid_to, next_start), next_start) - 1 end as part_to
    from recurring_days
    where billed = 'advance' and cycle_active_days <> billed_in_advance_days
    union all
    select
        *,
        'next' as part,
        next_active_days as days,
        next_days as period_days,
        greatest(valid_from, next_start) as part_from,
        least(coalesce(valid_to, next_end + 1), next_end + 1) - 1 as part_to
    from recurring_days
    where billed = 'advance' and next_active_days > 0
),

recurring_lines as (
    select
        account_id,
        'recurring' as section,
        category,
        category as tax_category,
        provider,
        service_number,
        null::varchar as jurisdiction,
        item_code as code,
        item_name
            || case part when 'correction' then
                    case when days < 0 then ' — credit for unused days ' else ' — days not yet billed ' end
                    else ' — ' end
            || strftime(part_from, '%b %-d') || '–' || strftime(part_to, '%b %-d')
            || case when abs(days) < period_days then ' (' || abs(days) || ' of ' || period_days || ' days)'
                    else '' end
            || case when quantity > 1 then ' × ' || quantity else '' end as description,
        days::decimal(18, 6) as quantity,
        'day' as unit,
        monthly_charge as rate,
        round_div(micros(monthly_charge) * quantity * days, period_days * account_currency.unit_micros, 'half_up')
            as amount_minor
    from recurring_parts
    join account_currency using (account_id)
),

one_time_lines as (
    select
        orders.account_id,
        'one_time' as section,
        orders.charge_type as category,
        orders.charge_type as tax_category,
        cycle.carrier_name as provider,
        orders.service_number,
        null::varchar as jurisdiction,
        orders.order_id as code,
        orders.description,
        1::decimal(18, 6) as quantity,
        'item' as unit,
        orders.amount as rate,
        round_div(micros(orders.amount), account_currency.unit_micros, 'half_up') as amount_minor
    from orders
    join account_currency using (account_id)
    cross join cycle
    where orders.charge_date between cycle.period_start and cycle.period_end
    union all
    select
        equipment.account_id,
        'one_time' as section,
        'equipment_sale' as category,
        'equipment_sale' as tax_category,
        cycle.carrier_name as provider,
        null::varchar as service_number,
        null::varchar as jurisdiction,
        equipment.serial_number as code,
        'Equipment sale: ' || equipment.model || ', S/N ' || equipment.serial_number as description,
        1::decimal(18, 6) as quantity,
        'item' as unit,
        equipment.price as rate,
        round_div(micros(equipment.price), account_currency.unit_micros, 'half_up') as amount_minor
    from equipment
    join account_currency using (account_id)
    cross join cycle
    where equipment.ownership = 'sale'
        and equipment.valid_from between cycle.period_start and cycle.period_end
),

number_states as (
    select service_number, arg_max(service_state, valid_from) as service_state
    from service_numbers
    group by all
),

account_lines as (
    -- a line for one service number is sourced to that number's state, other lines to the account's service
    -- state (place of primary use for mobile lines, the service address for fixed ones)
    select
        lines.* exclude (jurisdiction),
        coalesce(number_states.service_state, accounts.service_state) as jurisdiction
    from (select * from recurring_lines union all by name select * from one_time_lines) as lines
    join accounts using (account_id)
    left join number_states using (service_number)
),

usage_by_number as (
    select
        account_id,
        charged_number,
        service_state,
        coalesce(service, 'voice') as service,
        jurisdiction as call_jurisdiction,
        count(*) as events,
        sum(billed_seconds) as billed_seconds,
        coalesce(sum(included_units), 0) as included_units,
        coalesce(sum(charged_units), 0) as charged_units,
        sum(micros(charge_amount)) as charge_micros
    from rated
    group by all
),

usage_lines as (
    select
        account_id,
        'usage' as section,
        service as category,
        service || coalesce('_' || call_jurisdiction, '') as tax_category,
        (select carrier_name from cycle) as provider,
        charged_number as service_number,
        service_state as jurisdiction,
        call_jurisdiction as code,
        case service when 'voice' then 'Calls' when 'sms' then 'Text messages' when 'mms' then 'Picture messages'
                 when 'data' then 'Data sessions' else 'Value-added services' end
            || coalesce(' (' || replace(call_jurisdiction, '_', '-') || ')', '') || ' from '
            || case when charged_number like '+1%' and length(charged_number) = 12
                    then '+1 ' || substr(charged_number, 3, 3) || '-' || substr(charged_number, 6, 3) || '-'
                         || substr(charged_number, 9, 4)
                    else charged_number end
            || case when service = 'voice'
                    then ' (' || events || case when events = 1 then ' call, ' else ' calls, ' end
                         || (billed_seconds // 60) || ' min ' || (billed_seconds % 60) || ' s billed'
                         || case when included_units > 0
                                 then '; ' || (included_units // 60) || ' min ' || (included_units % 60)
                                      || ' s included in plan at 0.00, ' || (charged_units // 60) || ' min '
                                      || (charged_units % 60) || ' s charged' else '' end || ')'
                    when included_units > 0
                    then ' (' || included_units || ' ' || unit_name || ' included in plan at 0.00, '
                         || charged_units || ' ' || unit_name || ' charged)'
                    else '' end as description,
        events::decimal(18, 6) as quantity,
        case service when 'voice' then 'call' when 'sms' then 'message' when 'mms' then 'message'
                     else 'event' end as unit,
        null::decimal(18, 6) as rate,
        round_div(charge_micros, unit_micros, 'half_up') as amount_minor
    from (
        select *, case service when 'data' then 'bytes' when 'vas' then 'events' else 'messages' end as unit_name
        from usage_by_number
        join account_currency using (account_id)
    )
),

tier_lines as (
    select
        tier_charges.account_id,
        'usage' as section,
        tier_charges.service || '_tier' as category,
        tier_charges.service as tax_category,
        (select carrier_name from cycle) as provider,
        null::varchar as service_number,
        accounts.service_state as jurisdiction,
        tier_charges.tier_id as code,
        case tier_charges.service when 'voice' then 'Calls' when 'sms' then 'Text messages'
                 when 'mms' then 'Picture messages' when 'data' then 'Data' else 'Value-added services' end
            || ', ' || tier_charges.mode || ' tiers on ' || tier_charges.total_units || ' '
            || case tier_charges.service when 'voice' then 'seconds' when 'data' then 'bytes'
                    when 'vas' then 'events' else 'messages' end
            || ' this cycle' || coalesce(' (' || tier_charges.tier_breakdown || ')', '') as description,
        tier_charges.total_units::decimal(18, 6) as quantity,
        case tier_charges.service when 'voice' then 'second' when 'data' then 'byte' when 'vas' then 'event'
                 else 'message' end as unit,
        null::decimal(18, 6) as rate,
        round_div(micros(tier_charges.charge_amount), account_currency.unit_micros, 'half_up') as amount_minor
    from tier_charges
    join accounts using (account_id)
    join account_currency using (account_id)
),

data_rounding_lines as (
    select
        data_rounding.account_id,
        'usage' as section,
        'data_rounding' as category,
        'data' as tax_category,
        (select carrier_name from cycle) as provider,
        data_rounding.charged_number as service_number,
        coalesce(data_rounding.service_state, accounts.service_state) as jurisdiction,
        data_rounding.rate_card_id as code,
        'Data rounding from '
            || case when data_rounding.charged_number like '+1%' and length(data_rounding.charged_number) = 12
                    then '+1 ' || substr(data_rounding.charged_number, 3, 3) || '-'
                         || substr(data_rounding.charged_number, 6, 3) || '-' || substr(data_rounding.charged_number, 9, 4)
                    else data_rounding.charged_number end
            || coalesce(' (' || data_rounding.destination || ')', '') || ': ' || data_rounding.charged_bytes
            || ' bytes charged this cycle rounded up once to ' || data_rounding.rounded_bytes // data_unit_bytes
            || ' ' || data_rounding.data_unit || ', ' || data_rounding.rounding_bytes || ' bytes added'
            as description,
        data_rounding.rounding_bytes::decimal(18, 6) as quantity,
        'byte' as unit,
        null::decimal(18, 6) as rate,
        round_div(micros(data_rounding.charge_amount), account_currency.unit_micros, 'half_up') as amount_minor
    from (
        select
            *,
            case data_unit when 'MB' then 1048576 when 'KB' then 1024 else 1 end as data_unit_bytes
        from data_rounding
    ) as data_rounding
    join accounts using (account_id)
    join account_currency using (account_id)
    where data_rounding.rounding_bytes > 0
)

select * from account_lines
union all by name
select * from usage_lines
union all by name
select * from tier_lines
union all by name
select * from data_rounding_lines
