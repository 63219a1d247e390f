-- Sagas: one document per saga (state, steps, attempts, outputs) guarded by a revision, and the
-- task queue step runners take work from. A transition updates both in one transaction.
CREATE TABLE sagas (
    saga_id         TEXT PRIMARY KEY NOT NULL,
    name            TEXT NOT NULL,
    state           TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    revision        INTEGER NOT NULL,
    doc             TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL
);
CREATE INDEX sagas_state ON sagas (state, created_at_ms);
CREATE INDEX sagas_name ON sagas (name, created_at_ms);

CREATE TABLE saga_tasks (
    task_id       TEXT PRIMARY KEY NOT NULL,
    saga_id       TEXT NOT NULL,
    service       TEXT NOT NULL,
    visible_at_ms INTEGER NOT NULL,
    worker_id     TEXT,              -- NULL: ready to be claimed
    deadline_ms   INTEGER,           -- set while claimed: the task times out after it
    doc           TEXT NOT NULL
);
CREATE INDEX saga_tasks_ready ON saga_tasks (service, visible_at_ms) WHERE worker_id IS NULL;
CREATE INDEX saga_tasks_claimed ON saga_tasks (deadline_ms) WHERE worker_id IS NOT NULL;
CREATE INDEX saga_tasks_worker ON saga_tasks (worker_id) WHERE worker_id IS NOT NULL;
