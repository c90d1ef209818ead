-- rerate_deltas.sql: a cycle's previous and new rating side by side (rerate_compared, sql/rerate_compared.sql)
-- → one row per event whose charge, status or rate row changed.
-- Rule: delta = new charge − previous charge (a missing or suspended side counts 0); exact, 6 decimals.

select
    file_id,
    line_no,
    account_id,
    charged_number,
    case previous_rated when true then 'rated' when false then 'suspended' end as previous_status,
    case new_rated when true then 'rated' when false then 'suspended' end as new_status,
    previous_rate_card_id || ':' || coalesce(previous_prefix, '*') as previous_rate_row,
    new_rate_card_id || ':' || coalesce(new_prefix, '*') as new_rate_row,
    previous_charge,
    new_charge,
    (coalesce(new_charge, 0) - coalesce(previous_charge, 0))::decimal(18, 6) as delta
from rerate_compared
where previous_rated is distinct from new_rated
    or previous_charge is distinct from new_charge
    or previous_rate_card_id is distinct from new_rate_card_id
    or previous_prefix is distinct from new_prefix
