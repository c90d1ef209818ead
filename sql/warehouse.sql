-- warehouse.sql: builds the analysts' warehouse (a DuckDB file, built aside and swapped in whole) from the lake's
-- Parquet of every cycle, the pipeline's ledgers (attached read-only as `ledger`) and the reference data: every
-- table but the large ones, usage_records, rated_usage and rerate_events, which pipeline/warehouse.py builds
-- part by part (warehouse_usage_records.sql, warehouse_rated_usage.sql, warehouse_rerate_events.sql) and keeps
-- from one publication to the next.
-- Personal data is masked here: no tax id ever, account numbers shown in full only as the internal key.
-- Variables: lake (path of the lake folder). Reference tables are registered as ref_<name>; the suspense and
-- quarantine reason catalogues as ref_suspense_reasons / ref_quarantine_reasons; the rerate delta reports as
-- lake_rerate_events / lake_rerate_accounts (empty relations when no cycle was rerated); the lake's datasets as
-- lake_<dataset> views (pipeline/lake_fallbacks.py: the Parquet files, or an empty relation with their columns
-- when a stage has not run yet, e.g. no commissions/ before the first bill run).
-- Every table here is part of the warehouse's stable interface, documented column by column in
-- docs/WAREHOUSE.md (tests/test_warehouse_dictionary.py keeps the two equal).

create table usage_files as
select file_id, source_id, file_name, sha256, size_bytes, registered_at, registered_cycle, status, reason,
       reason_detail, duplicate_of, records, control_records
from ledger.usage_files;

create table suspense as
with suspended as (
    select cycle, file_id, line_no, source_id, 'mediation' as stage, reason, raw, charged_number, called_number,
           start_utc, billsec, late_from_cycle
    from lake_mediated_suspended
    union all
    select cycle, file_id, line_no, source_id, 'rating' as stage, reason, raw, charged_number, called_number,
           start_utc, billsec, late_from_cycle
    from lake_rated_suspended
)
select
    suspended.*,
    -- age: whole days from the call (UTC date) to the publication; null when the call has no usable time
    date_diff('day', cast(start_utc as date), cast(current_timestamp at time zone 'UTC' as date)) as age_days
from suspended;

create table duplicates as
select cycle, file_id, line_no, source_id, reason, duplicate_of_file_id, duplicate_of_line_no,
       charged_number, called_number, start_utc, billsec
from lake_mediated_duplicate;

create table discarded as
select cycle, file_id, line_no, source_id, reason, disposition, charged_number, called_number, start_utc, billsec
from lake_mediated_discarded;

create table accounts as
select account_id,
       -- masked for statements and screen shares: the last four characters only
       '****' || right(account_id, 4) as account_number_masked,
       account_name, account_type, billing_city, billing_state, billing_zip, service_state,
       agent_id, plan_id, currency, language, delivery_preference, activated_on, deactivated_on
from ref_accounts;

create table service_numbers as select * from ref_service_numbers;
create table agents as select * from ref_agents;
create table plans as select * from ref_plans;
create table price_books as select * from ref_price_books;
create table rate_cards as select * from ref_rate_cards;
create table taxes as select * from ref_taxes;
-- bill run (issue 5): products, discounts, commission plans, and the balance ledgers
create table products as select * from ref_products;
create table subscriptions as select * from ref_subscriptions;
create table discounts as select * from ref_discounts;
create table equipment as select * from ref_equipment;
create table commission_plans as select * from ref_commission_plans;
-- reports (issue 7): plan allowances and changes, orders, and each state's time zone (local busy hour)
create table allowances as select * from ref_allowances;
create table plan_changes as select * from ref_plan_changes;
create table orders as select * from ref_orders;
create table state_time_zones as select * from ref_state_time_zones;
create table adjustments as select * from ledger.adjustments;
create table payments as select * from ledger.payments;
create table payment_allocations as select * from ledger.payment_allocations;
create table disputes as select * from ledger.disputes;
create table credit_notes as select * from ledger.credit_notes;
create table invoice_balances as select * from ledger.invoice_balances;
create table suppressed_bills as select * from ledger.suppressed_bills;
create table commission_lines as
select * from lake_commission_lines;
create table agent_statements as
select * from lake_agent_statements;

create table invoices as select * from ledger.invoices;
create table invoice_lines as
select invoice_lines.*, invoices.cycle, invoices.account_id
from ledger.invoice_lines
join ledger.invoices using (invoice_number);

-- one row per invoice line with the account's service state, sales agent and rate plan and the line's revenue
-- class: what the revenue reports by state, agent, plan, service and call jurisdiction group (the rows of
-- each sum to the invoice register). Account attributes are the reference data as published.
create table revenue_lines as
select
    invoice_lines.cycle,
    invoice_lines.invoice_number,
    invoice_lines.line_no,
    invoice_lines.account_id,
    accounts.service_state,
    accounts.agent_id,
    accounts.plan_id,
    invoice_lines.section,
    invoice_lines.category,
    invoice_lines.code,
    -- government taxes and fees and the carrier's recovery fees, apart from the charges
    invoice_lines.section in ('taxes', 'carrier_fees') as is_tax_or_fee,
    -- usage lines by their service; every other line by its section (recurring, taxes, …)
    case
        when invoice_lines.section = 'usage' then 'usage_' || invoice_lines.category
        else invoice_lines.section
    end as revenue_service,
    -- a usage line's code is its call jurisdiction (voice) or its service
    case
        when invoice_lines.section = 'usage' then coalesce(invoice_lines.code, invoice_lines.category)
        else '(not usage)'
    end as call_jurisdiction,
    invoice_lines.amount
from invoice_lines
left join accounts using (account_id);

-- one row per tax or fee line: what a tax-liability return is filed from (by authority, jurisdiction, code)
create table tax_lines as
select invoice_number, cycle, account_id, issue_date, jurisdiction, code as tax_code, category as kind,
       provider as authority, description, taxable_base, rate, amount
from invoice_lines
join ledger.invoices using (invoice_number, cycle, account_id)
where section = 'taxes';

create table deliveries as select * from ledger.delivery_ledger;

-- mediation: the sequence numbers each loaded file carried (gaps and resends are read from here)
create table file_sequences as select * from ledger.file_sequences;

-- the catalogues of why a record is suspended and why a whole file is quarantined (code, meaning, fix)
create table suspense_reasons as select * from ref_suspense_reasons;
create table quarantine_reasons as select * from ref_quarantine_reasons;

-- rerating: per account, what a rerate changed (lake/rerate/cycle=C/; per event: warehouse_rerate_events.sql)
create table rerate_accounts as select * from lake_rerate_accounts;

-- publication: 'full' (every part read from the lake) or 'incremental' (only the parts changed since the last one)
create table published as
select current_timestamp as published_at, (select max(cycle) from ledger.finalized_cycles) as latest_cycle,
       getvariable('publication') as publication;
