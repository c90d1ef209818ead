-- title: Cycle summary
-- question: The cycle on one line: files, records by door, invoices, amount billed, deliveries.
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: cycle, files, records_in, rated, suspended, duplicates, discarded, invoices, billed, emailed,
-- columns: printed
select
    $cycle as cycle,
    (select count(*) from usage_files where registered_cycle = $cycle) as files,
    (select count(*) from usage_records where cycle = $cycle) as records_in,
    (select count(*) from rated_usage where cycle = $cycle) as rated,
    (select count(*) from suspense where cycle = $cycle) as suspended,
    (select count(*) from duplicates where cycle = $cycle) as duplicates,
    (select count(*) from discarded where cycle = $cycle) as discarded,
    (select count(*) from invoices where cycle = $cycle) as invoices,
    (select coalesce(sum(total_amount), 0) from invoices where cycle = $cycle)::decimal(18, 2) as billed,
    (select count(*) from deliveries where cycle = $cycle and channel = 'email') as emailed,
    (select count(*) from deliveries where cycle = $cycle and channel = 'print') as printed
