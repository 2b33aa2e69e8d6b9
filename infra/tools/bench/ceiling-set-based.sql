-- Ceiling: each kind of row written for all eight events in one set-based statement, with no
-- stale or duplicate checks: the best shape, beyond any consumer (bench-ceiling sends it as one
-- pipeline).
-- 
-- One transaction = the eight events bench-process sends for two customers of one company
-- (customer.created, customer.subscription.updated, invoice.payment_failed, invoice.paid each),
-- writing the same rows process-events writes for them: ledger row and object version each,
-- the member, the membership, two payments, a case with four reminders, the case recovered and
-- its reminders cancelled, the source's activity note. pgbench is the client, so none of the
-- consumer's own work (decoding, sealing, the projections' choices) is counted: an upper bound.
-- Run by bench-ceiling as the application role (row-level security on); events/s = 8 x TPS.
\set a random(1, 2000000000)
\set b random(1, 2000000000)
\set co random(0, 9)
BEGIN;
SELECT set_config('app.current_company_id', 'co_bench_' || :co, true);
INSERT INTO object_versions (company_id, provider, object_type, object_id, last_event_at, last_event_id) SELECT get_current_company_id(), 'stripe', v.t, v.p || c || v.s, now(), 'evt' FROM (VALUES ('customer', 'cus_', ''), ('subscription', 'sub_', ''), ('invoice', 'in_', ''), ('invoice', 'in_', '_2')) v(t, p, s), unnest(ARRAY[:a, :b]) c ON CONFLICT (company_id, provider, object_type, object_id) DO UPDATE SET last_event_at = EXCLUDED.last_event_at, last_event_id = EXCLUDED.last_event_id WHERE object_versions.last_event_at <= EXCLUDED.last_event_at;
INSERT INTO webhook_events (company_id, source_id, provider, provider_event_id, event_type, object_type, object_id, occurred_at, received_at, status, processed_at, attempts, payload_min, payload_enc, payload_key_id) SELECT get_current_company_id(), 'src_bench', 'stripe', 'evt_' || c || '_' || i, 'invoice.paid', 'invoice', 'in_' || c, now(), now(), 'completed', now(), 1, '{"id":"x"}'::jsonb, decode(repeat('ab', 320), 'hex'), 'k1' FROM unnest(ARRAY[:a, :b]) c, generate_series(1, 4) i ON CONFLICT (source_id, provider_event_id) DO NOTHING;
INSERT INTO members (company_id, provider, external_id, email_hash, email_enc, email_key_id) SELECT get_current_company_id(), 'stripe', 'cus_' || c, md5(c::text) || md5(c::text), decode(repeat('cd', 40), 'hex'), 'k1' FROM unnest(ARRAY[:a, :b]) c ON CONFLICT (company_id, provider, external_id) DO UPDATE SET email_hash = coalesce(EXCLUDED.email_hash, members.email_hash), status = 'active';
INSERT INTO memberships (company_id, provider, external_id, member_external_id, plan, status, current_period_end) SELECT get_current_company_id(), 'stripe', 'sub_' || c, 'cus_' || c, 'price_pro', 'past_due', now() FROM unnest(ARRAY[:a, :b]) c ON CONFLICT (company_id, provider, external_id) DO UPDATE SET status = EXCLUDED.status;
INSERT INTO payments (company_id, provider, external_id, membership_external_id, member_external_id, status, amount, currency, occurred_at) SELECT get_current_company_id(), 'stripe', 'in_' || c || s, 'sub_' || c, 'cus_' || c, st, 4900, 'usd', now() FROM unnest(ARRAY[:a, :b]) c, (VALUES ('', 'failed'), ('_2', 'paid')) v(s, st) ON CONFLICT (company_id, provider, external_id) DO UPDATE SET status = EXCLUDED.status, amount = EXCLUDED.amount;
WITH cases AS (INSERT INTO recovery_cases (company_id, provider, membership_external_id, opened_by_payment, amount_at_risk, currency, opened_at) SELECT get_current_company_id(), 'stripe', 'sub_' || c, 'in_' || c, 4900, 'usd', now() FROM unnest(ARRAY[:a, :b]) c ON CONFLICT DO NOTHING RETURNING id, opened_at) INSERT INTO reminders (company_id, case_id, offset_hours, due_at) SELECT get_current_company_id(), cases.id, o, cases.opened_at + make_interval(hours => o) FROM cases, unnest('{0,24,72,168}'::int[]) o ON CONFLICT DO NOTHING;
WITH closed AS (UPDATE recovery_cases SET status = 'recovered', closed_at = now(), closed_by_payment = 'in_2' WHERE company_id = get_current_company_id() AND provider = 'stripe' AND membership_external_id IN ('sub_' || :a, 'sub_' || :b) AND status = 'open' RETURNING id) UPDATE reminders SET status = 'cancelled' WHERE case_id IN (SELECT id FROM closed) AND status IN ('pending', 'enqueued');
SELECT note_source_activity(get_current_company_id(), 'src_bench', 'stripe', ARRAY[now()], 0);
END;
