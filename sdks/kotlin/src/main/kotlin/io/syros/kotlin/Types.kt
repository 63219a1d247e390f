package io.syros.kotlin

import kotlin.time.Duration

// Records of the client core, used as they are generated from bindings/uniffi (plain data
// classes; u64 fields are ULong, timestamps are ms since the Unix epoch, server clock).

/** A lease as the server granted it (`fencingToken` strictly increases per key). */
typealias LeaseInfo = io.syros.kotlin.ffi.LeaseInfo

/** A cached value with its expiry and tags. */
typealias CacheEntry = io.syros.kotlin.ffi.CacheEntry

/** A stored event. */
typealias RecordedEvent = io.syros.kotlin.ffi.RecordedEvent

/** What an append wrote. */
typealias AppendResult = io.syros.kotlin.ffi.AppendResult

/** A page of events. */
typealias ReadResult = io.syros.kotlin.ffi.ReadResult

/** A saga as the server reports it. */
typealias SagaInfo = io.syros.kotlin.ffi.SagaInfo

/** A step of a saga as the server reports it. */
typealias StepInfo = io.syros.kotlin.ffi.StepInfo

/** One attempt at a step's action or compensation. */
typealias AttemptInfo = io.syros.kotlin.ffi.AttemptInfo

/** Where a saga is in its life (`COMPLETED`, `COMPENSATED`, ...). */
typealias SagaState = io.syros.kotlin.ffi.SagaState

/** Server-side retry policy of a saga or a step. */
typealias StepRetry = io.syros.kotlin.ffi.StepRetry

/** Client-side retry policy of unary calls (full-jitter backoff). */
typealias RetryConfig = io.syros.kotlin.ffi.RetryConfig

/** Calls, attempts, retries and failovers of a client. */
typealias ClientStats = io.syros.kotlin.ffi.ClientStats

/** How a wait for a lease's end ended (`LOST`, `RELEASED`, `TIMED_OUT`). */
typealias LeaseEnd = io.syros.kotlin.ffi.LeaseEnd

/** A duration as the whole milliseconds the core takes; negative durations are refused. */
internal fun Duration.toMillis(name: String): ULong {
    if (isNegative()) throw SyrosException.of("invalid_argument", "$name must not be negative, got $this")
    return if (isInfinite()) ULong.MAX_VALUE else inWholeMilliseconds.toULong()
}

/** The version a stream must be at for an append to succeed. */
sealed interface ExpectedVersion {
    /** Any version, including a stream that does not exist yet. */
    data object Any : ExpectedVersion

    /** The stream must not exist yet. */
    data object NoStream : ExpectedVersion

    /** The stream's last event must have exactly [version]. */
    data class Exact(val version: ULong) : ExpectedVersion

    /** This as the bridge's record. */
    fun toFfi(): io.syros.kotlin.ffi.ExpectedVersion = when (this) {
        Any -> io.syros.kotlin.ffi.ExpectedVersion.Any
        NoStream -> io.syros.kotlin.ffi.ExpectedVersion.NoStream
        is Exact -> io.syros.kotlin.ffi.ExpectedVersion.Exact(version)
    }
}

/** Where a subscription starts. */
sealed interface SubscribeFrom {
    /** From the first event. */
    data object Start : SubscribeFrom

    /** Only events appended from now on. */
    data object End : SubscribeFrom

    /** From this version (one stream) or global position (all streams), inclusive. */
    data class At(val position: ULong) : SubscribeFrom

    /** This as the bridge's record. */
    fun toFfi(): io.syros.kotlin.ffi.SubscribeStart = when (this) {
        Start -> io.syros.kotlin.ffi.SubscribeStart.Start
        End -> io.syros.kotlin.ffi.SubscribeStart.End
        is At -> io.syros.kotlin.ffi.SubscribeStart.At(position)
    }
}
