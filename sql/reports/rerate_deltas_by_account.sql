-- title: Rerating deltas by account
-- question: After a rerate of the cycle, whose rated usage changed, by how much, and what will the bill run now charge?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: account_id, account_name, previous_usage, new_usage, delta, new_usage_billed
select
    rerate_accounts.account_id,
    accounts.account_name,
    rerate_accounts.previous_usage,
    rerate_accounts.new_usage,
    rerate_accounts.delta,
    rerate_accounts.new_usage_billed
from rerate_accounts
left join accounts using (account_id)
where rerate_accounts.cycle = $cycle
    and rerate_accounts.delta <> 0
order by abs(rerate_accounts.delta) desc, rerate_accounts.account_id
