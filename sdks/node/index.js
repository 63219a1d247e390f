'use strict';
// syros: the Node.js client of Syros (CommonJS entry; `import` gets index.mjs).
const native = require('./lib/native');
const errors = require('./lib/errors');
const client = require('./lib/client');

module.exports = {
  ...client,
  ...errors,
  /** The client core's version. */
  coreVersion: native.version(),
  /** Stop the client core's runtime (background work ends); the next call starts a new one. */
  shutdown: (timeout = 100) => native.shutdown(timeout),
};
