// Type declarations of the `syros` package (hand-written for the idiomatic layer; the native
// addon's generated declarations are internal). Durations are milliseconds; fencing tokens are
// bigint; cache values are Buffers (strings are accepted on input).

/// <reference types="node" />

export interface RetryOptions {
  /** Upper bound of the first backoff (ms, default 100). */
  initialInterval?: number;
  /** Growth of the bound per retry (default 2). */
  multiplier?: number;
  /** Largest backoff bound (ms, default 5000). */
  maxInterval?: number;
  /** Attempts in total including the first (default 5). */
  maxAttempts?: number;
  /** Budget of a whole call, retries included (ms). */
  deadline?: number;
}

export interface ClientOptions {
  /** `host:port` gRPC addresses; the client fails over between them. */
  addresses: string[];
  /** Bearer token sent with every call (change it with `setAuthToken`). */
  authToken?: string;
  /** Default lock owner (default `syros-<pid>-<random>`). */
  owner?: string;
  /** Limit for establishing a connection (ms, default 5000). */
  connectTimeout?: number;
  /** Limit for one attempt of a unary call (ms, default 10000). */
  callTimeout?: number;
  /** Retries of unary calls. */
  retry?: RetryOptions;
  /** Reconnection of subscriptions and task feeds (default: forever). */
  resubscribe?: RetryOptions;
  /** HTTP/2 keepalive interval (ms; 0 = off). */
  keepaliveInterval?: number;
  /** Abort the connect. */
  signal?: AbortSignal;
}

export interface LeaseInfo {
  leaseId: string;
  key: string;
  owner: string;
  /** Strictly increasing per key, across restarts and replicas. */
  fencingToken: bigint;
  /** ms since the epoch (server clock). */
  acquiredAt: number;
  expiresAt: number;
}

export interface LockOptions {
  /** Lease time to live (ms, default 30000); renewed in the background at about a third of it. */
  ttl?: number;
  /** How long to wait while someone else holds the key (ms, default 30000; then LockTimeout). */
  wait?: number;
  /** Lease owner (default: the client's). */
  owner?: string;
  /** Renew in the background (default true). */
  autoRenew?: boolean;
  /** Abort the wait: rejects with AbortError and leaves no lease behind. */
  signal?: AbortSignal;
}

/** A held lock, renewed by the client core until released or lost. */
export declare class Lease implements AsyncDisposable {
  private constructor();
  readonly info: LeaseInfo;
  readonly key: string;
  readonly leaseId: string;
  readonly owner: string;
  /** Pass it to the protected resource so it can refuse a stale holder. */
  readonly fencingToken: bigint;
  readonly expiresAt: number;
  readonly ttl: number;
  /** The lease can no longer be guaranteed: stop the protected work. */
  readonly lost: boolean;
  /** Neither released nor lost. */
  readonly held: boolean;
  /** Call `callback` once when the lease is lost; returns a function that unregisters it. */
  onLost(callback: (lease: Lease) => void): () => void;
  /** Resolves true when lost, false when released (or after `timeout` ms while still held). */
  waitLost(options?: { timeout?: number; signal?: AbortSignal }): Promise<boolean>;
  /** Release it (idempotent). */
  release(): Promise<void>;
  /** Extend it now (the core renews it by itself anyway). */
  renew(): Promise<LeaseInfo>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface CacheSetOptions {
  /** Time to live (ms); unset = no expiry. */
  ttl?: number;
  /** Tags for invalidateTag. */
  tags?: string[];
}

export interface CacheEntry {
  value: Buffer;
  expiresAt: number | null;
  tags: string[];
}

export type CacheValue = Buffer | Uint8Array | string;

export declare class Cache {
  private constructor();
  get(key: string): Promise<Buffer | null>;
  getEntry(key: string): Promise<CacheEntry | null>;
  /** Returns the expiry (ms since the epoch) or null. */
  set(key: string, value: CacheValue, options?: CacheSetOptions): Promise<number | null>;
  delete(key: string): Promise<boolean>;
  /** Removes every key of the tag atomically; how many. */
  invalidateTag(tag: string): Promise<number>;
  /** Single-flight in this process: one caller computes, the others get its value (or CallbackFailed). */
  getOrCompute(key: string, compute: () => CacheValue | Promise<CacheValue>, options?: CacheSetOptions): Promise<Buffer>;
}

export interface NewEvent {
  type: string;
  data?: unknown;
  metadata?: unknown;
  /** Unique id (default: made by the client, the same for its retries). */
  id?: string;
}

export interface RecordedEvent<T = any> {
  stream: string;
  version: number;
  globalPosition: number;
  id: string;
  type: string;
  data: T;
  metadata: unknown;
  createdAt: number;
}

export type ExpectedVersion = 'any' | 'no_stream' | number;

export interface AppendResult {
  lastVersion: number;
  firstPosition: number;
  lastPosition: number;
}

export interface ReadOptions {
  /** First version (stream) or global position (all), inclusive; default 0 (backwards: the end). */
  from?: number;
  backwards?: boolean;
  limit?: number;
}

export interface ReadResult {
  events: RecordedEvent[];
  last: number;
  exists: boolean;
}

export interface SubscribeOptions {
  /** "start" (default), "end" or a version/position. */
  from?: 'start' | 'end' | number;
  /** Ends the iteration with AbortError. */
  signal?: AbortSignal;
}

/** Catch-up, then live; resumes after reconnecting with no gap and no duplicate. */
export declare class Subscription implements AsyncIterable<RecordedEvent>, AsyncDisposable {
  private constructor();
  [Symbol.asyncIterator](): AsyncIterator<RecordedEvent>;
  /** The next event; with `timeout`, `{ timedOut: true }` when none came in time. */
  next(options?: { timeout?: number }): Promise<{ done: boolean; value: RecordedEvent | undefined; timedOut?: boolean }>;
  close(): void;
  return(): Promise<{ done: true; value: undefined }>;
  [Symbol.asyncDispose](): Promise<void>;
}

export declare class Events {
  private constructor();
  append(stream: string, events: NewEvent[], options?: { expectedVersion?: ExpectedVersion }): Promise<AppendResult>;
  read(stream: string, options?: ReadOptions): Promise<ReadResult>;
  readAll(options?: ReadOptions): Promise<ReadResult>;
  subscribe(stream: string, options?: SubscribeOptions): Subscription;
  subscribeAll(options?: SubscribeOptions): Subscription;
}

export interface StepRetryPolicy {
  initialInterval?: number;
  backoffCoefficient?: number;
  maximumInterval?: number;
  maximumAttempts?: number;
  nonRetryableErrors?: string[];
}

export interface StepDefinition {
  name: string;
  service: string;
  action: string;
  compensation?: string;
  /** Start-to-close timeout of one attempt (ms; default: the server's). */
  timeout?: number;
  retry?: StepRetryPolicy;
}

export type SagaState =
  | 'pending'
  | 'running'
  | 'compensating'
  | 'completed'
  | 'compensated'
  | 'compensation_failed'
  | 'cancelled';

export interface SagaInfo {
  sagaId: string;
  name: string;
  state: SagaState;
  input: unknown;
  idempotencyKey: string | null;
  steps: Array<{
    name: string;
    service: string;
    action: string;
    compensation: string | null;
    state: string;
    output: unknown;
    attempts: Array<{
      attempt: number;
      kind: string;
      startedAt: number;
      finishedAt: number;
      errorType: string | null;
      errorMessage: string | null;
    }>;
  }>;
  createdAt: number;
  updatedAt: number;
  error: string | null;
}

export declare class Sagas {
  private constructor();
  start(saga: {
    name: string;
    steps: StepDefinition[];
    input?: unknown;
    idempotencyKey?: string;
    retry?: StepRetryPolicy;
  }): Promise<SagaInfo>;
  get(sagaId: string): Promise<SagaInfo>;
  list(options?: { state?: SagaState; name?: string; limit?: number }): Promise<SagaInfo[]>;
  cancel(sagaId: string): Promise<SagaInfo>;
  /** Until final, at most `timeout` ms (default 60000; then DeadlineExceeded). */
  wait(sagaId: string, options?: { timeout?: number; signal?: AbortSignal }): Promise<SagaInfo>;
}

export interface Task<I = any> {
  taskId: string;
  sagaId: string;
  step: string;
  handler: string;
  isCompensation: boolean;
  attempt: number;
  /** The same for every redelivery and retry: make the handler idempotent with it. */
  idempotencyKey: string;
  input: I;
  previousOutputs: Record<string, unknown>;
  timeout: number;
  /** Whether the task is still assigned to this worker. */
  heartbeat(): Promise<boolean>;
}

export type Handler = (task: Task) => unknown | Promise<unknown>;

/** Runs saga steps on Node's event loop, pulling tasks from the client core. */
export declare class Worker {
  private constructor();
  readonly service: string;
  readonly maxConcurrent: number;
  action(name: string, handler: Handler): this;
  compensation(name: string, handler: Handler): this;
  /** Resolves after `stop()` (or the signal) once the handlers in flight finished. */
  run(options?: { signal?: AbortSignal }): Promise<void>;
  stop(): void;
}

/** Thrown by a handler to fail its task with an error type (matched by the retry policy). */
export declare class TaskFailure extends Error {
  constructor(message: string, options?: { type?: string; nonRetryable?: boolean });
  type: string;
  nonRetryable: boolean;
}

export declare class Client implements AsyncDisposable {
  constructor(options: ClientOptions);
  static connect(options: ClientOptions): Promise<Client>;
  readonly cache: Cache;
  readonly events: Events;
  readonly sagas: Sagas;
  readonly owner: string;
  readonly closed: boolean;
  setAuthToken(token: string | null): void;
  stats(): { calls: number; attempts: number; retries: number; failovers: number };
  checkHealth(): Promise<void>;
  lock(key: string, options?: LockOptions): Promise<Lease>;
  tryLock(key: string, options?: Omit<LockOptions, 'wait' | 'signal'>): Promise<Lease | null>;
  withLock<T>(key: string, options: LockOptions, fn: (lease: Lease) => Promise<T> | T): Promise<T>;
  withLock<T>(key: string, fn: (lease: Lease) => Promise<T> | T): Promise<T>;
  lockStatus(key: string): Promise<LeaseInfo | null>;
  listLocks(prefix?: string, options?: { limit?: number }): Promise<LeaseInfo[]>;
  forceRelease(key: string): Promise<LeaseInfo | null>;
  worker(service: string, options?: { maxConcurrent?: number }): Worker;
  /** Stop workers, end subscriptions and waits, release held leases, refuse later calls. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export type ErrorCode =
  | 'invalid_argument'
  | 'not_found'
  | 'lock_not_held'
  | 'version_conflict'
  | 'payload_too_large'
  | 'unimplemented'
  | 'unavailable'
  | 'internal'
  | 'outcome_unknown'
  | 'lock_timeout'
  | 'deadline_exceeded'
  | 'cancelled'
  | 'unauthenticated'
  | 'permission_denied'
  | 'callback_failed';

export declare class SyrosError extends Error {
  constructor(message: string, options?: { code?: ErrorCode; retryable?: boolean; details?: Record<string, string>; cause?: unknown });
  /** Stable code (docs/errors.md). */
  code: ErrorCode;
  /** Whether the same request may succeed later. */
  retryable: boolean;
  details: Record<string, string>;
  static code: ErrorCode;
}
export declare class InvalidArgument extends SyrosError {}
export declare class NotFound extends SyrosError {}
export declare class LockNotHeld extends SyrosError {}
export declare class VersionConflict extends SyrosError {}
export declare class PayloadTooLarge extends SyrosError {}
export declare class Unimplemented extends SyrosError {}
export declare class Unavailable extends SyrosError {}
export declare class Internal extends SyrosError {}
/** The call may or may not have taken effect (e.g. a connection lost during a commit): read back before repeating it. */
export declare class OutcomeUnknown extends SyrosError {}
export declare class LockTimeout extends SyrosError {}
export declare class DeadlineExceeded extends SyrosError {}
export declare class Cancelled extends SyrosError {}
export declare class Unauthenticated extends SyrosError {}
export declare class PermissionDenied extends SyrosError {}
export declare class CallbackFailed extends SyrosError {}
/** An aborted wait (`name` "AbortError", `cause` the signal's reason). */
export declare class AbortError extends Cancelled {
  constructor(message?: string, options?: { cause?: unknown });
}
export declare const errorClasses: Record<ErrorCode, typeof SyrosError>;
export declare const coreVersion: string;
/** Stop the client core's runtime (background work ends). */
export declare function shutdown(timeout?: number): void;

declare const syros: {
  Client: typeof Client;
  TaskFailure: typeof TaskFailure;
  SyrosError: typeof SyrosError;
  LockTimeout: typeof LockTimeout;
  [name: string]: unknown;
};
export default syros;
