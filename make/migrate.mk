# Usage: make migrate   (DATABASE_URL=postgresql://user:pass@host:5432/db make migrate)
# Migrates DATABASE_URL (default: the embedded SQLite file of `make run`) to the schema
# revision this code needs and prints the revisions it applied as JSON lines; a second run
# is a no-op. The image has no make: it runs `python -m service.data.migrate` (Helm hook Job,
# Kustomize Job, the compose `migrate` service). See README, "Changing the schema".

.PHONY: migrate migrate-sql

migrate: venv ## migrate DATABASE_URL (default: the embedded SQLite) to the code's schema
	$(BIN)/python -m service.data.migrate

migrate-sql: venv ## print every revision's PostgreSQL SQL (offline; what Squawk lints)
	$(BIN)/python -m service.data.migrate --sql
