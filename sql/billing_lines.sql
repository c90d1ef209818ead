-- billing_lines.sql: charges + discount lines + tax lines → the numbered charge lines of every billable
-- account (before invoice numbering), in truth-in-billing order: recurring, one-time, usage, discounts, the
-- carrier's own fees, then government taxes and fees apart. A zero discount is dropped; a zero tax line is kept only to show an exemption.
-- Amounts leave as exact decimal(18, 3) in the account's currency (from whole minor units: 2 decimals for
-- USD, 0 for JPY, 3 for BHD), each line with its currency.
-- Line numbers never depend on DuckDB's thread scheduling: the order ends in tax category and amount, so two
-- lines of one discount (its plan part and its usage part) always number the same way.
-- Inputs: charges, discount_lines, tax_lines, account_currency.

with

all_lines as (
    select * from charges
    union all by name
    select * from discount_lines where amount_minor <> 0
    union all by name
    select * from tax_lines
)

select
    account_id,
    row_number() over (
        partition by account_id
        order by
            case section
                when 'recurring' then 1 when 'one_time' then 2 when 'usage' then 3 when 'discounts' then 4
                when 'carrier_fees' then 5 else 6 end,
            service_number nulls first,
            jurisdiction,
            case category when 'government_tax' then 1 when 'regulatory_fee' then 2 when 'recovery_fee' then 3
                          else 0 end,
            code,
            description,
            tax_category,
            amount_minor
    )::integer as line_no,
    section,
    category,
    tax_category,
    provider,
    service_number,
    jurisdiction,
    code,
    description,
    quantity,
    unit,
    from_minor(taxable_base_minor, minor_units) as taxable_base,
    rate::decimal(18, 6) as rate,
    currency,
    from_minor(amount_minor, minor_units) as amount
from all_lines
join account_currency using (account_id)
order by account_id, line_no
