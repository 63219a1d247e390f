-- Sagas: one document per saga (state, steps, attempts, outputs) guarded by a revision, and the
-- task queue step runners take work from. A transition updates both in one transaction.
CREATE TABLE syros_sagas (
    saga_id         TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    state           TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    revision        BIGINT NOT NULL,
    doc             JSONB NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL
);
CREATE INDEX syros_sagas_state ON syros_sagas (state, created_at_ms);
CREATE INDEX syros_sagas_name ON syros_sagas (name, created_at_ms);

CREATE TABLE syros_saga_tasks (
    task_id       TEXT PRIMARY KEY,
    saga_id       TEXT NOT NULL,
    service       TEXT NOT NULL,
    visible_at_ms BIGINT NOT NULL,
    worker_id     TEXT,
    deadline_ms   BIGINT,
    doc           JSONB NOT NULL
);
CREATE INDEX syros_saga_tasks_ready ON syros_saga_tasks (service, visible_at_ms) WHERE worker_id IS NULL;
CREATE INDEX syros_saga_tasks_claimed ON syros_saga_tasks (deadline_ms) WHERE worker_id IS NOT NULL;
CREATE INDEX syros_saga_tasks_worker ON syros_saga_tasks (worker_id) WHERE worker_id IS NOT NULL;
