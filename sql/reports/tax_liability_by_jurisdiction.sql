-- title: Tax and fee liability by jurisdiction
-- question: How much tax and regulatory fee did the cycle's invoices collect per state, authority and tax code, on what taxable base — the figures a tax return is filed from?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: jurisdiction, authority, tax_code, tax_type, lines, accounts, taxable_base, tax_amount
select
    jurisdiction,
    authority,
    tax_code,
    kind as tax_type,
    count(*) as lines,
    count(distinct account_id) as accounts,
    sum(taxable_base)::decimal(18, 2) as taxable_base,
    sum(amount)::decimal(18, 2) as tax_amount
from tax_lines
where cycle = $cycle
group by all
order by jurisdiction, authority, tax_code
