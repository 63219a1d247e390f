// The idiomatic Swift layer over the UniFFI-generated bindings (SyrosFFI). It only translates:
// seconds to milliseconds, the bridge's error to `SyrosError`, pulled subscriptions to
// `AsyncThrowingStream`, pulled saga tasks to async handlers. Every `async` call waits for work
// that runs on the Rust client core's runtime.
//
// Written against the generated API but NOT compiled on the machine it was written on (no Swift
// toolchain there): see README.md.
import Foundation
import SyrosFFI

public typealias LeaseInfo = SyrosFFI.LeaseInfo
public typealias RecordedEvent = SyrosFFI.RecordedEvent
public typealias AppendResult = SyrosFFI.AppendResult
public typealias ReadResult = SyrosFFI.ReadResult
public typealias SagaInfo = SyrosFFI.SagaInfo
public typealias SagaState = SyrosFFI.SagaState
public typealias ExpectedVersion = SyrosFFI.ExpectedVersion
public typealias SubscribeStart = SyrosFFI.SubscribeStart
public typealias LeaseEnd = SyrosFFI.LeaseEnd
public typealias CacheEntry = SyrosFFI.CacheEntry

/// Every failure of a Syros call. `kind` is chosen mechanically from the stable `code` the client
/// core reports (docs/errors.md); `.other` is a code this SDK does not know yet.
public struct SyrosError: Error, CustomStringConvertible, Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case invalidArgument = "invalid_argument"
        case notFound = "not_found"
        case lockNotHeld = "lock_not_held"
        case versionConflict = "version_conflict"
        case payloadTooLarge = "payload_too_large"
        case unimplemented = "unimplemented"
        case unavailable = "unavailable"
        case internalError = "internal"
        case outcomeUnknown = "outcome_unknown"
        case lockTimeout = "lock_timeout"
        case deadlineExceeded = "deadline_exceeded"
        case cancelled = "cancelled"
        case unauthenticated = "unauthenticated"
        case permissionDenied = "permission_denied"
        case callbackFailed = "callback_failed"
        case other
    }

    public let kind: Kind
    public let code: String
    public let retryable: Bool
    public let message: String
    public let details: [String: String]

    public init(code: String, message: String, retryable: Bool = false, details: [String: String] = [:]) {
        self.kind = Kind(rawValue: code) ?? .other
        self.code = code
        self.retryable = retryable
        self.message = message
        self.details = details
    }

    public var description: String { "\(code): \(message)" }

    static func from(_ error: Error) -> Error {
        guard let ffi = error as? FfiError else { return error }
        switch ffi {
        case let .Failed(code, retryable, description, details):
            return SyrosError(code: code, message: description, retryable: retryable, details: details)
        }
    }
}

/// Run one bridge call, turning its error into a `SyrosError`.
@inline(__always)
func bridged<T>(_ call: () async throws -> T) async throws -> T {
    do { return try await call() } catch { throw SyrosError.from(error) }
}

@inline(__always)
func bridgedSync<T>(_ call: () throws -> T) throws -> T {
    do { return try call() } catch { throw SyrosError.from(error) }
}

func millis(_ seconds: TimeInterval) -> UInt64 {
    seconds.isFinite ? UInt64(max(0, (seconds * 1000).rounded())) : UInt64.max
}

/// Process-wide functions of the client core.
public enum Syros {
    /// The client core's version.
    public static var coreVersion: String { SyrosFFI.coreVersion() }

    /// The stable code of every error kind.
    public static var errorCodes: [String] { SyrosFFI.errorCodes() }

    /// Stop the core's runtime (renewals, subscriptions and workers end); the next call starts a
    /// new one.
    public static func shutdown(timeout: TimeInterval = 1) { SyrosFFI.shutdown(timeoutMs: millis(timeout)) }
}

/// A connection to Syros.
///
/// ```swift
/// let client = try await SyrosClient.connect(addresses: ["127.0.0.1:9090"])
/// try await client.withLock("orders:42", ttl: 10) { lease in
///     try await storage.write(order, fencingToken: lease.fencingToken)
/// }
/// ```
public final class SyrosClient: @unchecked Sendable {
    let handle: SyrosFFI.Client

    init(handle: SyrosFFI.Client) { self.handle = handle }

    /// Connect to these `host:port` addresses.
    public static func connect(addresses: [String], owner: String? = nil, authToken: String? = nil,
                               connectTimeout: TimeInterval = 5, callTimeout: TimeInterval = 10) async throws -> SyrosClient {
        var config = defaultClientConfig(addresses: addresses)
        config.owner = owner
        config.authToken = authToken
        config.connectTimeoutMs = millis(connectTimeout)
        config.callTimeoutMs = millis(callTimeout)
        let handle = try bridgedSync { try SyrosFFI.Client(config: config) }
        try await bridged { try await handle.connect() }
        return SyrosClient(handle: handle)
    }

    /// Refuse every later call (idempotent).
    public func close() { handle.closeClient() }

    /// Replace the bearer token sent with every later call.
    public func setAuthToken(_ token: String?) { handle.setAuthToken(token: token) }

    /// Ask the server whether it is serving.
    public func checkHealth() async throws { try await bridged { try await handle.checkHealth() } }

    // MARK: locks

    /// Acquire `key`, waiting up to `wait` seconds; renewed in the background until released or
    /// lost. Throws `SyrosError` of kind `.lockTimeout` when still held after `wait`.
    /// Cancelling the calling Task does not stop the wait (UniFFI's Swift futures are not
    /// cancellable): bound it with `wait`.
    public func lock(_ key: String, ttl: TimeInterval = 30, wait: TimeInterval = 30,
                     owner: String? = nil) async throws -> SyrosLease {
        let request = LockRequest(ttlMs: millis(ttl), waitMs: millis(wait), owner: owner, autoRenew: true)
        return SyrosLease(handle: try await bridged { try await handle.lock(key: key, request: request) })
    }

    /// Try once: nil when someone else holds `key`.
    public func tryLock(_ key: String, ttl: TimeInterval = 30) async throws -> SyrosLease? {
        let request = LockRequest(ttlMs: millis(ttl), waitMs: 0, owner: nil, autoRenew: true)
        return try await bridged { try await handle.tryLock(key: key, request: request) }.map(SyrosLease.init(handle:))
    }

    /// Run `body` holding `key`; released when `body` returns or throws.
    public func withLock<T>(_ key: String, ttl: TimeInterval = 30, wait: TimeInterval = 30,
                            _ body: (SyrosLease) async throws -> T) async throws -> T {
        let lease = try await lock(key, ttl: ttl, wait: wait)
        do {
            let result = try await body(lease)
            try await lease.release()
            return result
        } catch {
            try? await lease.release()
            throw error
        }
    }

    /// The current holder of `key`.
    public func lockStatus(_ key: String) async throws -> LeaseInfo? {
        try await bridged { try await handle.lockStatus(key: key) }
    }

    /// Administrative: drop whatever lease holds `key`.
    public func forceRelease(_ key: String) async throws -> LeaseInfo? {
        try await bridged { try await handle.forceRelease(key: key) }
    }

    // MARK: cache

    /// The value under `key`.
    public func cacheGet(_ key: String) async throws -> Data? {
        try await bridged { try await handle.cacheGet(key: key) }?.value
    }

    /// Store `value` for `ttl` seconds (nil: no expiry) with `tags`.
    @discardableResult
    public func cacheSet(_ key: String, _ value: Data, ttl: TimeInterval? = nil, tags: [String] = []) async throws -> Int64? {
        try await bridged { try await handle.cacheSet(key: key, value: value, set: CacheSet(ttlMs: ttl.map(millis), tags: tags)) }
    }

    /// Remove every key tagged `tag`; how many.
    @discardableResult
    public func cacheInvalidateTag(_ tag: String) async throws -> UInt64 {
        try await bridged { try await handle.cacheInvalidateTag(tag: tag) }
    }

    /// The value under `key`, or `compute`'s (one computation per key in this process at once).
    public func cacheGetOrCompute(_ key: String, ttl: TimeInterval? = nil, tags: [String] = [],
                                  _ compute: () async throws -> Data) async throws -> Data {
        let lookup = try await bridged { try await handle.cacheBegin(key: key, set: CacheSet(ttlMs: ttl.map(millis), tags: tags)) }
        switch lookup {
        case let .hit(value):
            return value
        case let .compute(ticket):
            let value: Data
            do {
                value = try await compute()
            } catch {
                try? await ticket.fail(message: String(describing: error))
                throw error
            }
            return try await bridged { try await ticket.complete(value: value) }
        }
    }

    // MARK: events

    /// Append `events` (type, JSON data) atomically if `stream` is at `expected`.
    public func append(_ stream: String, _ events: [(type: String, dataJson: String)],
                       expected: ExpectedVersion = .any) async throws -> AppendResult {
        let batch = events.map { NewEvent(eventId: nil, eventType: $0.type, dataJson: $0.dataJson, metadataJson: nil) }
        return try await bridged { try await handle.append(stream: stream, events: batch, expected: expected) }
    }

    /// Read `stream` forwards from `from`.
    public func read(_ stream: String, from: UInt64 = 0, limit: UInt32 = 0) async throws -> ReadResult {
        try await bridged { try await handle.read(request: ReadRequest(stream: stream, start: from, backwards: false, limit: limit)) }
    }

    /// The events of `stream` (nil: all streams): catch-up, then live, resuming after reconnects
    /// with no gap and no duplicate. Ends when the consumer stops iterating.
    public func subscribe(_ stream: String?, from: SubscribeStart = .start) -> AsyncThrowingStream<RecordedEvent, Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    let subscription = try await bridged { try await handle.subscribe(stream: stream, start: from) }
                    defer { subscription.unsubscribe() }
                    while !Task.isCancelled {
                        // Bounded waits, so a cancelled consumer is noticed within a second.
                        switch try await bridged({ try await subscription.next(timeoutMs: 1000) }) {
                        case let .event(event): continuation.yield(event)
                        case .timedOut: continue
                        case .ended: continuation.finish(); return
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    // MARK: sagas

    /// Start a saga; `steps` are (name, service, action, compensation).
    public func startSaga(_ name: String, steps: [(name: String, service: String, action: String, compensation: String?)],
                          inputJson: String = "{}", idempotencyKey: String? = nil) async throws -> SagaInfo {
        let definitions = steps.map {
            StepDefinition(name: $0.name, service: $0.service, action: $0.action, compensation: $0.compensation, timeoutMs: 0, retry: nil)
        }
        let saga = StartSaga(name: name, steps: definitions, inputJson: inputJson, idempotencyKey: idempotencyKey, retry: nil)
        return try await bridged { try await handle.startSaga(saga: saga) }
    }

    /// Wait until the saga is final, at most `timeout` seconds.
    public func waitSaga(_ sagaId: String, timeout: TimeInterval = 60) async throws -> SagaInfo {
        try await bridged { try await handle.waitSaga(sagaId: sagaId, timeoutMs: millis(timeout)) }
    }

    /// Run `handlers` (by action/compensation name; each returns the step's JSON output or
    /// throws) for `service`'s tasks until the calling Task is cancelled.
    public func runWorker(_ service: String, maxConcurrent: UInt32 = 16,
                          handlers: [String: @Sendable (TaskRecord) async throws -> String]) async throws {
        let worker = try await bridged { try await handle.worker(service: service, maxConcurrent: maxConcurrent) }
        defer { worker.stop() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            while !Task.isCancelled {
                guard let task = try await bridged({ try await worker.pollTask(timeoutMs: 1000) }) else { continue }
                group.addTask {
                    let outcome: TaskOutcome
                    if let handler = handlers[task.handler] {
                        do {
                            outcome = .completed(outputJson: try await handler(task))
                        } catch {
                            outcome = .failed(errorType: String(describing: type(of: error)), message: String(describing: error), nonRetryable: false)
                        }
                    } else {
                        outcome = .failed(errorType: "unknown_handler", message: "no handler for \(task.handler)", nonRetryable: true)
                    }
                    _ = try? await worker.complete(taskId: task.taskId, outcome: outcome)
                }
            }
            try await group.waitForAll()
        }
    }
}

/// A held lock, renewed by the client core until released or lost.
public final class SyrosLease: @unchecked Sendable {
    let handle: SyrosFFI.Lease

    init(handle: SyrosFFI.Lease) { self.handle = handle }

    /// The lease as last granted or renewed.
    public var info: LeaseInfo { handle.info() }
    /// Strictly increasing per lease ever granted: pass it to the protected resource.
    public var fencingToken: UInt64 { info.fencingToken }
    /// Whether it was lost: stop the protected work.
    public var isLost: Bool { handle.isLost() }
    /// Neither released nor lost.
    public var isHeld: Bool { handle.isHeld() }

    /// Release it (idempotent).
    public func release() async throws { try await bridged { try await handle.release() } }

    /// Wait until the lease ends: true when lost, false when released.
    public func awaitLost() async throws -> Bool {
        try await bridged { try await handle.waitEnd(timeoutMs: nil) } == .lost
    }
}
