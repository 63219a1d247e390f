package io.syros;

/**
 * The outcome of an append.
 *
 * @param lastVersion   the stream's version after it
 * @param firstPosition global position of the first event appended
 * @param lastPosition  global position of the last event appended
 */
public record AppendResult(long lastVersion, long firstPosition, long lastPosition) {}
