-- Every call of a cross-tenant door that changes something is audited on the system chain, in
-- the caller's transaction: the scheduler's claims need the same door as the ops crons.
GRANT EXECUTE ON FUNCTION record_audit(text, text, text, text, text, jsonb) TO inlet_scheduler;
