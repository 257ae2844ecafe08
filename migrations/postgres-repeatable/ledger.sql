-- Ledger invariants that drizzle-kit cannot generate. src/db/migrate.ts runs this file after the
-- drizzle migrations on every start, so each statement must be safe to run again.

-- Rejects the commit when a transaction's entries do not sum to zero. sum(bigint) is numeric in
-- PostgreSQL, so the sum cannot overflow.
create or replace function ledger_check_transaction_balanced() returns trigger
language plpgsql as $$
declare
  checked_id bigint;
  entry_sum numeric;
begin
  if tg_op = 'DELETE' then
    checked_id := old.transaction_id;
  else
    checked_id := new.transaction_id;
  end if;
  select coalesce(sum(amount), 0) into entry_sum from ledger_entries where transaction_id = checked_id;
  if entry_sum <> 0 then
    raise exception using
      errcode = 'check_violation',
      constraint = 'ledger_entries_balanced',
      message = format('Ledger transaction %s is unbalanced: its entries sum to %s instead of 0', checked_id, entry_sum);
  end if;
  return null;
end
$$;

-- Rejects the commit when a transaction has fewer than two entries. Together with the check above
-- and "amount <> 0", every transaction moves an amount from at least one account to another.
create or replace function ledger_check_transaction_has_entries() returns trigger
language plpgsql as $$
declare
  entry_count bigint;
begin
  select count(*) into entry_count from ledger_entries where transaction_id = new.id;
  if entry_count < 2 then
    raise exception using
      errcode = 'check_violation',
      constraint = 'ledger_transactions_has_entries',
      message = format('Ledger transaction %s has %s entries, but needs at least 2', new.id, entry_count);
  end if;
  return null;
end
$$;

-- Rejects every UPDATE and DELETE of ledger history. A mistake is corrected by posting a reversing
-- transaction. TRUNCATE is not blocked, so an operator can still empty a development database.
create or replace function ledger_reject_history_change() returns trigger
language plpgsql as $$
begin
  raise exception using
    errcode = 'restrict_violation',
    message = format('%s is append-only: %s is not allowed, post a reversing transaction instead', tg_table_name, tg_op);
end
$$;

-- CREATE OR REPLACE does not exist for constraint triggers, and dropping a trigger on every start
-- would lock the table, so each trigger is created only when it is missing.
do $$
begin
  if not exists (
    select 1 from pg_trigger
    where tgname = 'ledger_entries_balanced' and tgrelid = 'ledger_entries'::regclass
  ) then
    create constraint trigger ledger_entries_balanced
      after insert or update or delete on ledger_entries
      deferrable initially deferred
      for each row execute function ledger_check_transaction_balanced();
  end if;

  if not exists (
    select 1 from pg_trigger
    where tgname = 'ledger_transactions_has_entries' and tgrelid = 'ledger_transactions'::regclass
  ) then
    create constraint trigger ledger_transactions_has_entries
      after insert on ledger_transactions
      deferrable initially deferred
      for each row execute function ledger_check_transaction_has_entries();
  end if;

  if not exists (
    select 1 from pg_trigger
    where tgname = 'ledger_entries_append_only' and tgrelid = 'ledger_entries'::regclass
  ) then
    create trigger ledger_entries_append_only
      before update or delete on ledger_entries
      for each row execute function ledger_reject_history_change();
  end if;

  if not exists (
    select 1 from pg_trigger
    where tgname = 'ledger_transactions_append_only' and tgrelid = 'ledger_transactions'::regclass
  ) then
    create trigger ledger_transactions_append_only
      before update or delete on ledger_transactions
      for each row execute function ledger_reject_history_change();
  end if;
end
$$;
