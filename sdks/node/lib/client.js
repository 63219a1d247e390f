'use strict';
const native = require('./native');
const errors = require('./errors');
const { translate, translateSync, InvalidArgument, SyrosError } = errors;
const { asyncDispose, millis, abortable, abortError, CloseToken, toBuffer, parseJson, toJson } = require('./util');

const DEFAULT_TTL = 30_000;
const DEFAULT_WAIT = 30_000;

function leaseInfo(info) {
  return info && {
    leaseId: info.leaseId,
    key: info.key,
    owner: info.owner,
    fencingToken: info.fencingToken,
    acquiredAt: info.acquiredAtMs,
    expiresAt: info.expiresAtMs,
  };
}

function retryConfig(name, retry) {
  if (!retry) return undefined;
  return {
    initialIntervalMs: millis(`${name}.initialInterval`, retry.initialInterval, 100),
    multiplier: retry.multiplier ?? 2,
    maxIntervalMs: millis(`${name}.maxInterval`, retry.maxInterval, 5_000),
    maxAttempts: retry.maxAttempts ?? 5,
    deadlineMs: millis(`${name}.deadline`, retry.deadline, undefined),
  };
}

/** A held lock. The client core renews it at about a third of its TTL until released or lost. */
class Lease {
  constructor(nativeLease, client) {
    this._native = nativeLease;
    this._client = client;
    this._lostCallbacks = new Set();
    this._watch = null;
    client._leases.add(this);
  }

  /** The lease as last granted or renewed. */
  get info() {
    return leaseInfo(this._native.info);
  }
  get key() {
    return this._native.info.key;
  }
  get leaseId() {
    return this._native.info.leaseId;
  }
  get owner() {
    return this._native.info.owner;
  }
  /** Strictly increasing per key: pass it to the protected resource. */
  get fencingToken() {
    return this._native.info.fencingToken;
  }
  /** When it expires unless renewed (ms since the epoch, server clock). */
  get expiresAt() {
    return this._native.info.expiresAtMs;
  }
  get ttl() {
    return this._native.ttlMs;
  }
  /** The lease can no longer be guaranteed: stop the protected work. */
  get lost() {
    return this._native.lost;
  }
  /** Neither released nor lost. */
  get held() {
    return this._native.held;
  }

  /** How the lease ended: "lost" or "released" (one watcher per lease, started on demand). */
  _ended() {
    if (!this._watch) {
      this._watch = translate(this._native.waitEnd(null, this._client._closing.token)).then(
        (end) => {
          if (end === 'lost') for (const callback of this._lostCallbacks) callback(this);
          return end;
        },
        () => 'closed',
      );
    }
    return this._watch;
  }

  /** Call `callback(lease)` once when the lease is lost; returns a function that unregisters it. */
  onLost(callback) {
    if (typeof callback !== 'function') throw new InvalidArgument('onLost needs a function');
    if (this.lost) {
      queueMicrotask(() => callback(this));
      return () => {};
    }
    this._lostCallbacks.add(callback);
    this._ended();
    return () => this._lostCallbacks.delete(callback);
  }

  /**
   * Wait until the lease is lost (true) or released (false); `timeout` (ms) ends the wait with
   * false while it is still held.
   */
  async waitLost({ timeout, signal } = {}) {
    const limit = millis('timeout', timeout, null);
    const end = await abortable(signal, this._client._closing, (token) =>
      this._native.waitEnd(limit, token),
    );
    return end === 'lost';
  }

  /** Release it (idempotent). */
  async release() {
    this._client._leases.delete(this);
    await translate(this._native.release());
  }

  /** Extend it now (the core renews it by itself anyway). */
  async renew() {
    return leaseInfo(await translate(this._native.renew()));
  }

  /** `await using lease = await client.lock(...)` releases it at the end of the block. */
  [asyncDispose]() {
    return this.release();
  }
}

/** `client.cache`: get/set/delete with TTL and tags, invalidate by tag, single-flight get-or-compute. */
class Cache {
  constructor(client) {
    this._client = client;
  }

  _set(options = {}) {
    return { ttlMs: millis('ttl', options.ttl, undefined), tags: options.tags ? [...options.tags] : [] };
  }

  /** The value under `key` (a Buffer), or null. */
  async get(key) {
    const entry = await this.getEntry(key);
    return entry ? entry.value : null;
  }

  /** The entry under `key`: `{ value, expiresAt, tags }`, or null. */
  async getEntry(key) {
    const entry = await translate(this._client._native.cacheGet(key));
    return entry && { value: entry.value, expiresAt: entry.expiresAtMs ?? null, tags: entry.tags };
  }

  /** Store `value` (Buffer or string); returns its expiry (ms since the epoch) or null. */
  async set(key, value, options = {}) {
    const expires = await translate(
      this._client._native.cacheSet(key, toBuffer('value', value), this._set(options)),
    );
    return expires ?? null;
  }

  /** Remove `key`; whether it existed. */
  async delete(key) {
    return translate(this._client._native.cacheDelete(key));
  }

  /** Remove every key tagged `tag` (atomically); how many. */
  async invalidateTag(tag) {
    return translate(this._client._native.cacheInvalidateTag(tag));
  }

  /**
   * The value under `key`, or `compute()`'s (Buffer or string), stored with `{ ttl, tags }`.
   * Callers for one key in this process share one computation (single-flight); when it throws,
   * every waiting caller gets CallbackFailed and nothing is stored.
   */
  async getOrCompute(key, compute, options = {}) {
    if (typeof compute !== 'function') throw new InvalidArgument('getOrCompute needs a function');
    const lookup = await translate(this._client._native.cacheBegin(key, this._set(options)));
    if (Buffer.isBuffer(lookup)) return lookup;
    let value;
    try {
      value = toBuffer('the computed value', await compute());
    } catch (err) {
      await translate(lookup.fail(String(err && err.message ? err.message : err)));
      throw err;
    }
    return translate(lookup.complete(value));
  }
}

function recordedEvent(event) {
  return {
    stream: event.stream,
    version: event.version,
    globalPosition: event.globalPosition,
    id: event.eventId,
    type: event.eventType,
    data: parseJson(event.dataJson),
    metadata: parseJson(event.metadataJson),
    createdAt: event.createdAtMs,
  };
}

function readResult(read) {
  return { events: read.events.map(recordedEvent), last: read.last, exists: read.exists };
}

function subscribeFrom(from) {
  if (from === undefined || from === null) return 'start';
  if (from === 'start' || from === 'end') return from;
  if (Number.isInteger(from) && from >= 0) return from;
  throw new InvalidArgument(`from must be "start", "end" or a non-negative integer, got ${String(from)}`);
}

/**
 * A live subscription: catch-up, then live; resumes after reconnecting with no gap and no
 * duplicate. Iterate it with `for await`; `close()` (or `break`, or the signal) ends it.
 */
class Subscription {
  constructor(client, stream, from, signal) {
    this._client = client;
    this._stream = stream;
    this._from = subscribeFrom(from);
    this._signal = signal;
    this._native = null;
    this._opening = null;
    this._closed = false;
    this._onAbort = () => this.close();
    if (signal) signal.addEventListener('abort', this._onAbort, { once: true });
    client._subscriptions.add(this);
  }

  async _open() {
    if (!this._opening) {
      this._opening = abortable(this._signal, this._client._closing, (token) =>
        this._client._native.subscribe(this._stream, this._from, token),
      ).then((sub) => {
        this._native = sub;
        if (this._closed) sub.close();
        return sub;
      });
    }
    return this._opening;
  }

  /** The next event, or `{ done: true }` once closed; `timeout` (ms) resolves `{ timedOut: true }`. */
  async next({ timeout } = {}) {
    if (this._signal && this._signal.aborted) throw abortError(this._signal);
    if (this._closed) return { done: true, value: undefined };
    const limit = millis('timeout', timeout, null);
    let item;
    try {
      const sub = await this._open();
      item = await abortable(this._signal, this._client._closing, (token) => sub.next(limit, token));
    } catch (err) {
      // Closed meanwhile (by `close()` or the client's): the iteration ends; an abort rejects.
      const aborted = this._signal && this._signal.aborted;
      if (this._closed && !aborted && err instanceof errors.Cancelled) return { done: true, value: undefined };
      throw err;
    }
    if (item.kind === 'event') return { done: false, value: recordedEvent(item.event) };
    if (item.kind === 'timed_out') return { done: false, value: undefined, timedOut: true };
    this._finish();
    if (this._signal && this._signal.aborted) throw abortError(this._signal);
    return { done: true, value: undefined };
  }

  /** Stop following (idempotent); a pending `next` ends. */
  close() {
    if (this._closed) return;
    this._closed = true;
    if (this._native) this._native.close();
    this._finish();
  }

  _finish() {
    this._closed = true;
    if (this._signal) this._signal.removeEventListener('abort', this._onAbort);
    this._client._subscriptions.delete(this);
  }

  async return() {
    this.close();
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator]() {
    const iterator = {
      next: async () => {
        for (;;) {
          const item = await this.next();
          if (!item.timedOut) return { done: item.done, value: item.value };
        }
      },
      return: () => this.return(),
    };
    return iterator;
  }

  async [asyncDispose]() {
    this.close();
  }
}

/** `client.events`: append with optimistic concurrency, read, subscribe. */
class Events {
  constructor(client) {
    this._client = client;
  }

  /**
   * Append `events` (`{ type, data, metadata?, id? }`) atomically; `expectedVersion` is "any"
   * (default), "no_stream" or the stream's current last version (else VersionConflict).
   */
  async append(stream, events, { expectedVersion = 'any' } = {}) {
    if (!Array.isArray(events)) throw new InvalidArgument('events must be an array');
    const batch = events.map((event, index) => {
      if (!event || typeof event.type !== 'string') {
        throw new InvalidArgument(`events[${index}] needs a string type`);
      }
      return {
        eventId: event.id ?? undefined,
        eventType: event.type,
        dataJson: toJson(`events[${index}].data`, event.data ?? {}),
        metadataJson: event.metadata === undefined ? undefined : toJson(`events[${index}].metadata`, event.metadata),
      };
    });
    const result = await translate(this._client._native.append(stream, batch, expectedVersion));
    return { lastVersion: result.lastVersion, firstPosition: result.firstPosition, lastPosition: result.lastPosition };
  }

  _read(stream, { from, backwards = false, limit } = {}) {
    const start = from === undefined || from === null ? (backwards ? undefined : 0) : from;
    return translate(this._client._native.read({ stream, start, backwards, limit })).then(readResult);
  }

  /** Events of `stream` from version `from` (default 0; backwards: the end). */
  read(stream, options = {}) {
    return this._read(stream, options);
  }

  /** Events of all streams by global position. */
  readAll(options = {}) {
    return this._read(undefined, options);
  }

  /** Follow `stream` from "start" (default), "end" or a version. */
  subscribe(stream, { from, signal } = {}) {
    return new Subscription(this._client, stream, from, signal);
  }

  /** Follow every stream from "start" (default), "end" or a global position. */
  subscribeAll({ from, signal } = {}) {
    return new Subscription(this._client, null, from, signal);
  }
}

function stepRetry(retry) {
  if (!retry) return undefined;
  return {
    initialIntervalMs: millis('retry.initialInterval', retry.initialInterval, 1_000),
    backoffCoefficient: retry.backoffCoefficient ?? 2,
    maximumIntervalMs: millis('retry.maximumInterval', retry.maximumInterval, 60_000),
    maximumAttempts: retry.maximumAttempts ?? 3,
    nonRetryableErrors: retry.nonRetryableErrors ? [...retry.nonRetryableErrors] : [],
  };
}

function sagaInfo(saga) {
  return {
    sagaId: saga.sagaId,
    name: saga.name,
    state: saga.state,
    input: parseJson(saga.inputJson),
    idempotencyKey: saga.idempotencyKey ?? null,
    steps: saga.steps.map((step) => ({
      name: step.name,
      service: step.service,
      action: step.action,
      compensation: step.compensation ?? null,
      state: step.state,
      output: parseJson(step.outputJson),
      attempts: step.attempts.map((a) => ({
        attempt: a.attempt,
        kind: a.kind,
        startedAt: a.startedAtMs,
        finishedAt: a.finishedAtMs,
        errorType: a.errorType ?? null,
        errorMessage: a.errorMessage ?? null,
      })),
    })),
    createdAt: saga.createdAtMs,
    updatedAt: saga.updatedAtMs,
    error: saga.error ?? null,
  };
}

/** `client.sagas`: start, get, list, cancel, wait. Steps run in workers (`client.worker`). */
class Sagas {
  constructor(client) {
    this._client = client;
  }

  /** Start a saga `{ name, steps, input, idempotencyKey?, retry? }`. */
  async start({ name, steps, input = {}, idempotencyKey, retry }) {
    if (!Array.isArray(steps)) throw new InvalidArgument('steps must be an array');
    const definition = {
      name,
      steps: steps.map((step) => ({
        name: step.name,
        service: step.service,
        action: step.action,
        compensation: step.compensation ?? undefined,
        timeoutMs: millis('step timeout', step.timeout, 0),
        retry: stepRetry(step.retry),
      })),
      inputJson: toJson('input', input),
      idempotencyKey: idempotencyKey ?? undefined,
      retry: stepRetry(retry),
    };
    return sagaInfo(await translate(this._client._native.startSaga(definition)));
  }

  async get(sagaId) {
    return sagaInfo(await translate(this._client._native.getSaga(sagaId)));
  }

  /** Newest first, optionally of one `state` and/or `name`. */
  async list({ state, name, limit } = {}) {
    const sagas = await translate(this._client._native.listSagas(state, name, limit));
    return sagas.map(sagaInfo);
  }

  /** Cancel: what completed is compensated. */
  async cancel(sagaId) {
    return sagaInfo(await translate(this._client._native.cancelSaga(sagaId)));
  }

  /** Wait until the saga is final, at most `timeout` ms (default 60 s; then DeadlineExceeded). */
  async wait(sagaId, { timeout, signal } = {}) {
    const limit = millis('timeout', timeout, 60_000);
    const saga = await abortable(signal, this._client._closing, (token) =>
      this._client._native.waitSaga(sagaId, limit, token),
    );
    return sagaInfo(saga);
  }
}

/** Thrown by a step handler to fail its task with an error type (matched against the retry policy). */
class TaskFailure extends Error {
  constructor(message, { type = 'TaskFailure', nonRetryable = false } = {}) {
    super(message);
    this.name = 'TaskFailure';
    this.type = type;
    this.nonRetryable = nonRetryable;
  }
}

/**
 * A saga step runner for one service. Handlers run on Node's event loop: the worker pulls tasks
 * from the client core (which holds at most `maxConcurrent`), runs the handler registered under
 * the task's name, and reports its result or error.
 */
class Worker {
  constructor(client, service, { maxConcurrent = 16 } = {}) {
    if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1) {
      throw new InvalidArgument('maxConcurrent must be a positive integer');
    }
    this._client = client;
    this.service = service;
    this.maxConcurrent = maxConcurrent;
    this._handlers = new Map();
    this._native = null;
    this._running = null;
    this._stopped = false;
    this._inFlight = new Set();
  }

  /** Handle the action named `name`: `handler(task)` returns the step's output (JSON). */
  action(name, handler) {
    return this._register(name, handler);
  }

  /** Handle the compensation named `name`. */
  compensation(name, handler) {
    return this._register(name, handler);
  }

  _register(name, handler) {
    if (typeof handler !== 'function') throw new InvalidArgument(`the handler for ${name} must be a function`);
    this._handlers.set(name, handler);
    return this;
  }

  /** Run until `stop()` (or the signal, or the client's close); resolves once in-flight handlers finished. */
  run({ signal } = {}) {
    if (!this._running) this._running = this._run(signal);
    return this._running;
  }

  async _run(signal) {
    const onAbort = () => this.stop();
    if (signal) {
      if (signal.aborted) this._stopped = true;
      signal.addEventListener('abort', onAbort, { once: true });
    }
    this._client._workers.add(this);
    try {
      if (this._stopped) return;
      this._native = await translate(this._client._native.worker(this.service, this.maxConcurrent));
      if (this._stopped) this._native.stop();
      for (;;) {
        const task = await translate(this._native.pollTask(null));
        if (!task) break;
        const running = this._handle(task);
        this._inFlight.add(running);
        running.finally(() => this._inFlight.delete(running));
      }
      await Promise.all(this._inFlight);
      await translate(this._native.stopAndDrain());
    } finally {
      if (signal) signal.removeEventListener('abort', onAbort);
      this._client._workers.delete(this);
    }
  }

  async _handle(record) {
    const handler = this._handlers.get(record.handler);
    const worker = this._native;
    const task = {
      taskId: record.taskId,
      sagaId: record.sagaId,
      step: record.stepName,
      handler: record.handler,
      isCompensation: record.isCompensation,
      attempt: record.attempt,
      idempotencyKey: record.idempotencyKey,
      input: parseJson(record.inputJson),
      previousOutputs: parseJson(record.previousOutputsJson) || {},
      timeout: record.timeoutMs,
      /** Whether the task is still ours (a long handler can stop early when false). */
      heartbeat: () => translate(worker.heartbeat(record.taskId)),
    };
    let outcome;
    if (!handler) {
      outcome = {
        errorType: 'unknown_handler',
        message: `no handler registered for ${record.handler} in service ${this.service}`,
        nonRetryable: true,
      };
    } else {
      try {
        outcome = { outputJson: toJson('the handler output', await handler(task)) };
      } catch (err) {
        outcome = {
          errorType: (err && (err.type || err.name)) || 'Error',
          message: String(err && err.message !== undefined ? err.message : err),
          nonRetryable: Boolean(err && err.nonRetryable),
        };
      }
    }
    try {
      await translate(worker.complete(record.taskId, outcome));
    } catch (err) {
      // The core retries reports; what is left (a closed client) only loses this report, and
      // the server times the task out and hands it out again.
      if (!(err instanceof SyrosError)) throw err;
    }
  }

  /** Stop taking tasks; `run()` resolves once the handlers in flight finished. */
  stop() {
    this._stopped = true;
    if (this._native) this._native.stop();
  }
}

/**
 * A connection to Syros. `await Client.connect({ addresses: ['127.0.0.1:9090'] })`; durations
 * are milliseconds, fencing tokens are bigint.
 */
class Client {
  constructor(options = {}) {
    const addresses = options.addresses;
    if (!Array.isArray(addresses) || addresses.length === 0) {
      throw new InvalidArgument('addresses must be a non-empty array of "host:port"');
    }
    const config = {
      addresses: addresses.map(String),
      connectTimeoutMs: millis('connectTimeout', options.connectTimeout, undefined),
      callTimeoutMs: millis('callTimeout', options.callTimeout, undefined),
      retry: retryConfig('retry', options.retry),
      resubscribe: retryConfig('resubscribe', options.resubscribe),
      owner: options.owner,
      authToken: options.authToken,
      keepaliveIntervalMs: millis('keepaliveInterval', options.keepaliveInterval, undefined),
    };
    this._native = translateSync(() => native.Client.create(config));
    this._closing = new CloseToken();
    this._leases = new Set();
    this._subscriptions = new Set();
    this._workers = new Set();
    this.cache = new Cache(this);
    this.events = new Events(this);
    this.sagas = new Sagas(this);
  }

  /** Create a client and wait until it is connected. */
  static async connect(options = {}) {
    const client = new Client(options);
    try {
      await abortable(options.signal, client._closing, (token) => client._native.connect(token));
    } catch (err) {
      client._native.close();
      throw err;
    }
    return client;
  }

  /** Replace the bearer token sent with every later call (null: none). */
  setAuthToken(token) {
    this._native.setAuthToken(token ?? null);
  }

  /** The default lock owner. */
  get owner() {
    return translateSync(() => this._native.owner());
  }

  get closed() {
    return this._native.closed;
  }

  /** Calls, attempts, retries and failovers so far. */
  stats() {
    return translateSync(() => this._native.stats());
  }

  /** Ask the server whether it is serving. */
  checkHealth() {
    return translate(this._native.checkHealth());
  }

  _lockRequest(options, defaultWait) {
    return {
      ttlMs: millis('ttl', options.ttl, DEFAULT_TTL),
      waitMs: millis('wait', options.wait, defaultWait),
      owner: options.owner,
      autoRenew: options.autoRenew ?? true,
    };
  }

  /**
   * Acquire `key`, waiting up to `wait` ms (default 30 s; then LockTimeout). The lease is
   * renewed in the background until released or lost.
   */
  async lock(key, options = {}) {
    const request = this._lockRequest(options, DEFAULT_WAIT);
    const lease = await abortable(options.signal, request.waitMs > 0 ? this._closing : null, (token) =>
      this._native.lock(key, request, token),
    );
    return new Lease(lease, this);
  }

  /** Try once: the lease, or null when someone else holds `key`. */
  async tryLock(key, options = {}) {
    const lease = await translate(this._native.tryLock(key, this._lockRequest(options, 0)));
    return lease ? new Lease(lease, this) : null;
  }

  /** Run `fn(lease)` holding `key`; the lease is released afterwards, whatever happens. */
  async withLock(key, options, fn) {
    if (typeof options === 'function') [options, fn] = [{}, options];
    const lease = await this.lock(key, options);
    try {
      return await fn(lease);
    } finally {
      await lease.release();
    }
  }

  /** The current holder of `key`, or null. */
  async lockStatus(key) {
    return leaseInfo(await translate(this._native.lockStatus(key)));
  }

  /** Held locks whose key starts with `prefix`. */
  async listLocks(prefix = '', { limit } = {}) {
    return (await translate(this._native.listLocks(prefix, limit))).map(leaseInfo);
  }

  /** Administrative: drop whatever lease holds `key`; returns it (or null). */
  async forceRelease(key) {
    return leaseInfo(await translate(this._native.forceRelease(key)));
  }

  /** A step runner for `service` (register handlers, then `await worker.run()`). */
  worker(service, options = {}) {
    return new Worker(this, service, options);
  }

  /**
   * Close: stop workers (handlers in flight finish), end subscriptions and pending waits,
   * release the leases still held, and refuse later calls. Idempotent.
   */
  async close() {
    if (this._native.closed) return;
    const running = [...this._workers].map((worker) => {
      worker.stop();
      return worker._running;
    });
    for (const subscription of [...this._subscriptions]) subscription.close();
    this._closing.cancel();
    await Promise.allSettled(running);
    await Promise.allSettled([...this._leases].map((lease) => lease.release()));
    this._native.close();
  }

  [asyncDispose]() {
    return this.close();
  }
}

module.exports = { Client, Lease, Cache, Events, Subscription, Sagas, Worker, TaskFailure };
