-- billing_taxes.sql: the taxes and fees of one dependency level → rows added to tax_lines. Run once per level
-- (getvariable('tax_level')), so a tax on taxes sees the tax lines of the levels before it.
--   sourcing: every line carries the state it is sourced to (usage: the service number's state; account
--     lines: the account's service state, i.e. place of primary use / service address); a state tax applies to
--     the lines of its state, a federal one to the lines of every state (one line per state);
--   percent: base = Σ lines whose tax category is in the tax's base list (a token matches the category or
--     its family: 'voice' matches 'voice_interstate'), + its discounts unless discounts_reduce_base = no,
--     + the tax lines named in taxes_on; amount = base × percent_taxable % × rate %, rounded once by the tax's
--     own method;
--   per_line: per_line_amount × service numbers of the state in service on any day of the cycle ("each
--     month or part thereof", never prorated);
--   section: taxes and government-mandated fees in 'taxes'; a carrier's recovery fee is the carrier's own price
--     and goes with its charges in 'carrier_fees' (truth-in-billing), never among the taxes;
--   exemptions: a certificate (tax code or '*') exempts the account; lifeline exempts from the taxes marked
--     lifeline_exempt; recovery fees are the carrier's price and are never exempt. An exempt tax is kept as a
--     zero line naming the certificate.
-- Inputs: cycle_params, charges, discount_lines, tax_lines, taxes, tax_levels, tax_exemptions, accounts,
-- service_numbers, account_currency.

insert into tax_lines by name

with

cycle as (
    select * from cycle_params
),

level_taxes as (
    select taxes.*
    from taxes
    join tax_levels using (tax_code, valid_from)
    cross join cycle
    where tax_levels.tax_level = getvariable('tax_level')
        and taxes.valid_from <= cycle.period_end
        and (taxes.valid_to is null or taxes.valid_to > cycle.period_end)
),

taxable_lines as (
    select account_id, jurisdiction, section, tax_category, code, amount_minor from charges
    union all
    select account_id, jurisdiction, section, tax_category, code, amount_minor from discount_lines
    union all
    select account_id, jurisdiction, section, tax_category, code, amount_minor from tax_lines
),

account_states as (
    select distinct account_id, jurisdiction from taxable_lines
),

applicable as (
    select
        account_states.account_id,
        account_states.jurisdiction,
        level_taxes.*
    from account_states
    join level_taxes
        on level_taxes.level = 'federal' or level_taxes.state = account_states.jurisdiction
),

percent_bases as (
    select
        applicable.account_id,
        applicable.jurisdiction,
        applicable.tax_code,
        coalesce(sum(taxable_lines.amount_minor), 0) as base_minor
    from applicable
    left join taxable_lines
        on taxable_lines.account_id = applicable.account_id
        and taxable_lines.jurisdiction = applicable.jurisdiction
        and case
                when taxable_lines.section in ('taxes', 'carrier_fees')
                    then list_contains(string_split(coalesce(applicable.taxes_on, ''), '|'), taxable_lines.code)
                when taxable_lines.section = 'discounts' and applicable.discounts_reduce_base = 'no' then false
                else len(list_filter(
                    string_split(applicable.base, '|'),
                    lambda token: token = 'all' or token = taxable_lines.tax_category
                        or starts_with(taxable_lines.tax_category, token || '_')
                )) > 0
            end
    where applicable.method = 'percent'
    group by all
),

line_counts as (
    select
        applicable.account_id,
        applicable.jurisdiction,
        applicable.tax_code,
        count(distinct service_numbers.service_number) as lines
    from applicable
    cross join cycle
    join service_numbers
        on service_numbers.account_id = applicable.account_id
        and service_numbers.service_state = applicable.jurisdiction
        and service_numbers.valid_from <= cycle.period_end
        and (service_numbers.valid_to is null or service_numbers.valid_to > cycle.period_start)
    where applicable.method = 'per_line'
    group by all
),

exemptions as (
    select
        applicable.account_id,
        applicable.jurisdiction,
        applicable.tax_code,
        min(tax_exemptions.exemption || coalesce(' ' || tax_exemptions.certificate_id, '')) as exempt_by
    from applicable
    cross join cycle
    join tax_exemptions
        on tax_exemptions.account_id = applicable.account_id
        and tax_exemptions.tax_code in (applicable.tax_code, '*')
        and tax_exemptions.valid_from <= cycle.period_end
        and (tax_exemptions.valid_to is null or tax_exemptions.valid_to > cycle.period_end)
        and applicable.kind <> 'recovery_fee'
        and (tax_exemptions.exemption = 'certificate' or applicable.lifeline_exempt = 'yes')
    group by all
),

computed as (
    select
        applicable.*,
        percent_bases.base_minor,
        line_counts.lines,
        exemptions.exempt_by,
        case applicable.method
            when 'percent' then round_div(
                percent_bases.base_minor * micros(applicable.percent_taxable) * micros(applicable.rate_percent),
                100::hugeint * 1000000 * 100 * 1000000,
                applicable.rounding_method
            )
            else round_div(line_counts.lines * micros(applicable.per_line_amount), account_currency.unit_micros,
                           applicable.rounding_method)
        end as computed_minor
    from applicable
    left join percent_bases using (account_id, jurisdiction, tax_code)
    left join line_counts using (account_id, jurisdiction, tax_code)
    left join exemptions using (account_id, jurisdiction, tax_code)
    join account_currency using (account_id)
    where coalesce(percent_bases.base_minor, 0) <> 0 or coalesce(line_counts.lines, 0) > 0
)

select
    account_id,
    case kind when 'recovery_fee' then 'carrier_fees' else 'taxes' end as section,
    kind as category,
    kind as tax_category,
    case kind when 'recovery_fee' then (select carrier_name from cycle) else authority end as provider,
    null::varchar as service_number,
    jurisdiction,
    tax_code as code,
    tax_name
        || case method
               when 'percent' then ' ' || rtrim(rtrim(rate_percent::varchar, '0'), '.') || '%'
                   || case when percent_taxable < 100
                           then ' of ' || rtrim(rtrim(percent_taxable::varchar, '0'), '.') || '% taxable'
                           else '' end
               else ' × ' || lines || case when lines = 1 then ' line' else ' lines' end
           end
        || case when level = 'federal' then ' (' || jurisdiction || ' lines)' else '' end
        || coalesce(' — exempt: ' || exempt_by, '') as description,
    case method when 'per_line' then lines::decimal(18, 6) end as quantity,
    case method when 'per_line' then 'line' end as unit,
    case method when 'percent' then base_minor end as taxable_base_minor,
    case method when 'percent' then rate_percent else per_line_amount end as rate,
    case when exempt_by is null then computed_minor else 0 end as amount_minor
from computed
where computed_minor <> 0
