# The two commands a newcomer needs: `make run` and `make test`. Both install what is missing.
SCRIPTS := infra/scripts

.PHONY: run test chaos load package services services-stop services-status reset migrate check-template

run:            ## the whole system locally: services, migrations, demo sources, `inlet local` on :3000
	@ARGS="$(ARGS)" $(SCRIPTS)/run.sh

test:           ## fmt, clippy, every test against real Postgres + moto, template checks
	@$(SCRIPTS)/test.sh

chaos:          ## fault injection: replay storm, kill -9, Postgres restart, poison (ARGS="--events N")
	@ARGS="$(ARGS)" $(SCRIPTS)/chaos.sh

load:           ## load test: wrk, 200 connections, 60 s, every provider, 10% duplicates (ARGS="...")
	@ARGS="$(ARGS)" $(SCRIPTS)/load-test.sh

package:        ## sam build: every function's release bootstrap (ARCH=x86_64 here; not part of make test)
	@ARCH="$(ARCH)" $(SCRIPTS)/package.sh

services:       ## start Postgres and moto on free local ports (idempotent); writes .local/env
	@$(SCRIPTS)/services.sh up

services-stop:  ## stop the local services; leaves no process behind
	@$(SCRIPTS)/services.sh down

services-status:
	@$(SCRIPTS)/services.sh status

reset:          ## stop services, delete their state, start them fresh
	@$(SCRIPTS)/services.sh reset

migrate: services
	@. .local/env && cargo run --quiet -p inlet-infra --bin inlet -- migrate --dir migrations

check-template:
	@$(SCRIPTS)/check-template.sh
