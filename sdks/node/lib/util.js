'use strict';
const native = require('./native');
const { AbortError, Cancelled, InvalidArgument, fromNative } = require('./errors');

const asyncDispose = Symbol.asyncDispose || Symbol.for('nodejs.asyncDispose');

/** A duration option in milliseconds (a non-negative finite number), or `fallback`. */
function millis(name, value, fallback) {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new InvalidArgument(`${name} must be a non-negative number of milliseconds, got ${String(value)}`);
  }
  return Math.round(value);
}

function abortError(signal) {
  return new AbortError('the operation was aborted', { cause: signal.reason });
}

/**
 * Run a native wait that takes a CancelToken: aborting `signal`, or cancelling `shared` (the
 * client's close token), cancels it. An aborted wait rejects with AbortError; the binding API
 * aborts the work itself (a lock wait aborted in time leaves no lease).
 */
async function abortable(signal, shared, start) {
  if (!signal) {
    try {
      return await start(shared && shared.token);
    } catch (err) {
      throw fromNative(err);
    }
  }
  if (signal.aborted) throw abortError(signal);
  const token = new native.CancelToken();
  const onAbort = () => token.cancel();
  signal.addEventListener('abort', onAbort, { once: true });
  const release = shared ? shared.onCancel(onAbort) : () => {};
  try {
    return await start(token);
  } catch (err) {
    const translated = fromNative(err);
    if (signal.aborted && translated instanceof Cancelled) throw abortError(signal);
    throw translated;
  } finally {
    signal.removeEventListener('abort', onAbort);
    release();
  }
}

/**
 * A client's close switch: one native CancelToken shared by every wait without a signal, plus
 * listeners for the per-call tokens of waits with one.
 */
class CloseToken {
  constructor() {
    this.token = new native.CancelToken();
    this.listeners = new Set();
  }

  onCancel(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  cancel() {
    this.token.cancel();
    for (const listener of this.listeners) listener();
    this.listeners.clear();
  }
}

/** A string or Buffer (or Uint8Array) value as a Buffer. */
function toBuffer(name, value) {
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw new InvalidArgument(`${name} must be a Buffer or a string, got ${typeof value}`);
}

function parseJson(text) {
  if (text === undefined || text === null || text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function toJson(name, value) {
  const text = JSON.stringify(value === undefined ? null : value);
  if (text === undefined) throw new InvalidArgument(`${name} is not JSON-serialisable`);
  return text;
}

module.exports = { asyncDispose, millis, abortable, abortError, CloseToken, toBuffer, parseJson, toJson };
