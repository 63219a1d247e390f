// syros: the Node.js client of Syros (ES module entry, same objects as the CommonJS one).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const syros = require('./index.js');

export const {
  Client,
  Lease,
  Cache,
  Events,
  Subscription,
  Sagas,
  Worker,
  TaskFailure,
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
  errorClasses,
  coreVersion,
  shutdown,
} = syros;
export default syros;
