-- The balance below which the account's owner wants a warning (AccountBalanceLow, the dashboard's banner, the
-- CLI's warning); none by default. The crossing is worked out from the balance before and after each posting,
-- so nothing records whether the warning was sent: a balance back at or above the threshold re-arms it.
alter table accounts add column low_balance_threshold numeric(20, 6)
    constraint low_balance_threshold_not_negative check (low_balance_threshold >= 0);
