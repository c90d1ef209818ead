-- title: Tax and fee liability by tax type
-- question: How much of each type of tax or fee (government tax, regulatory fee, 911 …) and at which level (federal, state, local) did the cycle collect?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: tax_type, level, lines, jurisdictions, taxable_base, tax_amount
with

tax_levels as (
    select distinct tax_code, level from taxes
)

select
    tax_lines.kind as tax_type,
    coalesce(tax_levels.level, 'unknown') as level,
    count(*) as lines,
    count(distinct tax_lines.jurisdiction) as jurisdictions,
    sum(tax_lines.taxable_base)::decimal(18, 2) as taxable_base,
    sum(tax_lines.amount)::decimal(18, 2) as tax_amount
from tax_lines
left join tax_levels using (tax_code)
where tax_lines.cycle = $cycle
group by all
order by tax_amount desc, tax_type
