-- Ceiling: the same statements, all sent as one pipeline (the shape of process-events now).
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
\startpipeline
BEGIN;
SELECT set_config('app.current_company_id', 'co_bench_' || :co, true);
SELECT record_event(get_current_company_id(), 'src_bench', 'stripe', 'evt_' || :a || '_1', 'customer.created', 'customer', 'cus_' || :a, now(), now(), 'completed', '{"id":"x"}'::jsonb, decode(repeat('ab', 320), 'hex'), 'k1');
INSERT INTO members (company_id, provider, external_id, email_hash, email_enc, email_key_id) VALUES (get_current_company_id(), 'stripe', 'cus_' || :a, md5(:a::text) || md5(:a::text), decode(repeat('cd', 40), 'hex'), 'k1') ON CONFLICT (company_id, provider, external_id) DO UPDATE SET email_hash = coalesce(EXCLUDED.email_hash, members.email_hash), status = 'active';
SELECT record_event(get_current_company_id(), 'src_bench', 'stripe', 'evt_' || :a || '_2', 'customer.subscription.updated', 'subscription', 'sub_' || :a, now(), now(), 'completed', '{"id":"x"}'::jsonb, decode(repeat('ab', 320), 'hex'), 'k1');
INSERT INTO memberships (company_id, provider, external_id, member_external_id, plan, status, current_period_end) VALUES (get_current_company_id(), 'stripe', 'sub_' || :a, 'cus_' || :a, 'price_pro', 'past_due', now()) ON CONFLICT (company_id, provider, external_id) DO UPDATE SET status = EXCLUDED.status;
SELECT record_event(get_current_company_id(), 'src_bench', 'stripe', 'evt_' || :a || '_3', 'invoice.payment_failed', 'invoice', 'in_' || :a, now(), now(), 'completed', '{"id":"x"}'::jsonb, decode(repeat('ab', 320), 'hex'), 'k1');
INSERT INTO payments (company_id, provider, external_id, membership_external_id, member_external_id, status, amount, currency, occurred_at) VALUES (get_current_company_id(), 'stripe', 'in_' || :a, 'sub_' || :a, 'cus_' || :a, 'failed', 4900, 'usd', now()) ON CONFLICT (company_id, provider, external_id) DO UPDATE SET status = EXCLUDED.status, amount = EXCLUDED.amount;
WITH cases AS (INSERT INTO recovery_cases (company_id, provider, membership_external_id, opened_by_payment, amount_at_risk, currency, opened_at) SELECT get_current_company_id(), 'stripe', 'sub_' || :a, 'in_' || :a, 4900, 'usd', now() ON CONFLICT DO NOTHING RETURNING id, opened_at) INSERT INTO reminders (company_id, case_id, offset_hours, due_at) SELECT get_current_company_id(), cases.id, o, cases.opened_at + make_interval(hours => o) FROM cases, unnest('{0,24,72,168}'::int[]) o ON CONFLICT DO NOTHING;
SELECT record_event(get_current_company_id(), 'src_bench', 'stripe', 'evt_' || :a || '_4', 'invoice.paid', 'invoice', 'in_' || :a || '_2', now(), now(), 'completed', '{"id":"x"}'::jsonb, decode(repeat('ab', 320), 'hex'), 'k1');
INSERT INTO payments (company_id, provider, external_id, membership_external_id, member_external_id, status, amount, currency, occurred_at) VALUES (get_current_company_id(), 'stripe', 'in_' || :a || '_2', 'sub_' || :a, 'cus_' || :a, 'paid', 4900, 'usd', now()) ON CONFLICT (company_id, provider, external_id) DO UPDATE SET status = EXCLUDED.status, amount = EXCLUDED.amount;
WITH closed AS (UPDATE recovery_cases SET status = 'recovered', closed_at = now(), closed_by_payment = 'in_2' WHERE company_id = get_current_company_id() AND provider = 'stripe' AND membership_external_id = 'sub_' || :a AND status = 'open' RETURNING id) UPDATE reminders SET status = 'cancelled' WHERE case_id IN (SELECT id FROM closed) AND status IN ('pending', 'enqueued');
SELECT record_event(get_current_company_id(), 'src_bench', 'stripe', 'evt_' || :b || '_1', 'customer.created', 'customer', 'cus_' || :b, now(), now(), 'completed', '{"id":"x"}'::jsonb, decode(repeat('ab', 320), 'hex'), 'k1');
INSERT INTO members (company_id, provider, external_id, email_hash, email_enc, email_key_id) VALUES (get_current_company_id(), 'stripe', 'cus_' || :b, md5(:b::text) || md5(:b::text), decode(repeat('cd', 40), 'hex'), 'k1') ON CONFLICT (company_id, provider, external_id) DO UPDATE SET email_hash = coalesce(EXCLUDED.email_hash, members.email_hash), status = 'active';
SELECT record_event(get_current_company_id(), 'src_bench', 'stripe', 'evt_' || :b || '_2', 'customer.subscription.updated', 'subscription', 'sub_' || :b, now(), now(), 'completed', '{"id":"x"}'::jsonb, decode(repeat('ab', 320), 'hex'), 'k1');
INSERT INTO memberships (company_id, provider, external_id, member_external_id, plan, status, current_period_end) VALUES (get_current_company_id(), 'stripe', 'sub_' || :b, 'cus_' || :b, 'price_pro', 'past_due', now()) ON CONFLICT (company_id, provider, external_id) DO UPDATE SET status = EXCLUDED.status;
SELECT record_event(get_current_company_id(), 'src_bench', 'stripe', 'evt_' || :b || '_3', 'invoice.payment_failed', 'invoice', 'in_' || :b, now(), now(), 'completed', '{"id":"x"}'::jsonb, decode(repeat('ab', 320), 'hex'), 'k1');
INSERT INTO payments (company_id, provider, external_id, membership_external_id, member_external_id, status, amount, currency, occurred_at) VALUES (get_current_company_id(), 'stripe', 'in_' || :b, 'sub_' || :b, 'cus_' || :b, 'failed', 4900, 'usd', now()) ON CONFLICT (company_id, provider, external_id) DO UPDATE SET status = EXCLUDED.status, amount = EXCLUDED.amount;
WITH cases AS (INSERT INTO recovery_cases (company_id, provider, membership_external_id, opened_by_payment, amount_at_risk, currency, opened_at) SELECT get_current_company_id(), 'stripe', 'sub_' || :b, 'in_' || :b, 4900, 'usd', now() ON CONFLICT DO NOTHING RETURNING id, opened_at) INSERT INTO reminders (company_id, case_id, offset_hours, due_at) SELECT get_current_company_id(), cases.id, o, cases.opened_at + make_interval(hours => o) FROM cases, unnest('{0,24,72,168}'::int[]) o ON CONFLICT DO NOTHING;
SELECT record_event(get_current_company_id(), 'src_bench', 'stripe', 'evt_' || :b || '_4', 'invoice.paid', 'invoice', 'in_' || :b || '_2', now(), now(), 'completed', '{"id":"x"}'::jsonb, decode(repeat('ab', 320), 'hex'), 'k1');
INSERT INTO payments (company_id, provider, external_id, membership_external_id, member_external_id, status, amount, currency, occurred_at) VALUES (get_current_company_id(), 'stripe', 'in_' || :b || '_2', 'sub_' || :b, 'cus_' || :b, 'paid', 4900, 'usd', now()) ON CONFLICT (company_id, provider, external_id) DO UPDATE SET status = EXCLUDED.status, amount = EXCLUDED.amount;
WITH closed AS (UPDATE recovery_cases SET status = 'recovered', closed_at = now(), closed_by_payment = 'in_2' WHERE company_id = get_current_company_id() AND provider = 'stripe' AND membership_external_id = 'sub_' || :b AND status = 'open' RETURNING id) UPDATE reminders SET status = 'cancelled' WHERE case_id IN (SELECT id FROM closed) AND status IN ('pending', 'enqueued');
SELECT note_source_activity(get_current_company_id(), 'src_bench', 'stripe', ARRAY[now()], 0);
END;
\endpipeline
