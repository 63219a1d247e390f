'use strict';
// One JS error class per error kind of the client core (the shared vocabulary), chosen
// mechanically from the record's stable `code`.
const ERROR_MARKER = 'SYROS_ERROR_RECORD:';

/** Every Syros failure: `code` (stable), `retryable`, `details` (strings by name). */
class SyrosError extends Error {
  constructor(message, { code, retryable = false, details = {}, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    this.code = code || new.target.code || 'internal';
    this.retryable = retryable;
    this.details = details;
  }
}

const classes = {};
function define(name, code, base = SyrosError) {
  const cls = { [name]: class extends base {} }[name];
  cls.code = code;
  classes[code] = cls;
  return cls;
}

const InvalidArgument = define('InvalidArgument', 'invalid_argument');
const NotFound = define('NotFound', 'not_found');
const LockNotHeld = define('LockNotHeld', 'lock_not_held');
const VersionConflict = define('VersionConflict', 'version_conflict');
const PayloadTooLarge = define('PayloadTooLarge', 'payload_too_large');
const Unimplemented = define('Unimplemented', 'unimplemented');
const Unavailable = define('Unavailable', 'unavailable');
const Internal = define('Internal', 'internal');
/** The call may or may not have taken effect (e.g. a connection lost during a commit). */
const OutcomeUnknown = define('OutcomeUnknown', 'outcome_unknown');
const LockTimeout = define('LockTimeout', 'lock_timeout');
const DeadlineExceeded = define('DeadlineExceeded', 'deadline_exceeded');
const Cancelled = define('Cancelled', 'cancelled');
const Unauthenticated = define('Unauthenticated', 'unauthenticated');
const PermissionDenied = define('PermissionDenied', 'permission_denied');
const CallbackFailed = define('CallbackFailed', 'callback_failed');

/** A wait ended by its `AbortSignal` (`name` is "AbortError"; `cause` is the signal's reason). */
class AbortError extends Cancelled {
  constructor(message = 'the operation was aborted', options = {}) {
    super(message, { code: 'cancelled', ...options });
    this.name = 'AbortError';
  }
}

/** The Syros error in a native rejection, or the error itself when it carries none. */
function fromNative(err) {
  if (!(err instanceof Error) || typeof err.message !== 'string' || !err.message.startsWith(ERROR_MARKER)) {
    return err;
  }
  let record;
  try {
    record = JSON.parse(err.message.slice(ERROR_MARKER.length));
  } catch {
    return err;
  }
  const cls = classes[record.code] || SyrosError;
  return new cls(record.message, {
    code: record.code,
    retryable: Boolean(record.retryable),
    details: record.details || {},
  });
}

/** `promise`, with a native rejection turned into its Syros error class. */
async function translate(promise) {
  try {
    return await promise;
  } catch (err) {
    throw fromNative(err);
  }
}

/** Call a synchronous native function, turning its error into its Syros error class. */
function translateSync(fn) {
  try {
    return fn();
  } catch (err) {
    throw fromNative(err);
  }
}

module.exports = {
  SyrosError,
  InvalidArgument,
  NotFound,
  LockNotHeld,
  VersionConflict,
  PayloadTooLarge,
  Unimplemented,
  Unavailable,
  Internal,
  OutcomeUnknown,
  LockTimeout,
  DeadlineExceeded,
  Cancelled,
  Unauthenticated,
  PermissionDenied,
  CallbackFailed,
  AbortError,
  errorClasses: classes,
  fromNative,
  translate,
  translateSync,
};
