-- Load reports are append-only: a report, once issued, is signed and chained to the next one, so
-- changing or removing a row would only break the chain that verifiers check. src/db/migrate.ts
-- runs this file after the drizzle migrations on every start, so each statement must be safe to
-- run again. TRUNCATE is not blocked, so an operator can still empty a development database.
create or replace function load_reports_reject_change() returns trigger
language plpgsql as $$
begin
  raise exception using
    errcode = 'restrict_violation',
    message = format('%s is append-only: %s is not allowed; issue a new report instead', tg_table_name, tg_op);
end
$$;

do $$
begin
  if not exists (
    select 1 from pg_trigger
    where tgname = 'load_reports_append_only' and tgrelid = 'load_reports'::regclass
  ) then
    create trigger load_reports_append_only
      before update or delete on load_reports
      for each row execute function load_reports_reject_change();
  end if;
end
$$;
