'use strict';
// Shared by the tests: one server per test file, clients connected to it, unique names.
const { SyrosServer } = require('./server');
const syros = require('../..');

let counter = 0;
/** A name unique to this process and call. */
function unique(prefix) {
  counter += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter}`;
}

/** Connect a client to `server` with test-friendly timeouts. */
function connect(server, options = {}) {
  return syros.Client.connect({
    addresses: [server.grpcAddress],
    connectTimeout: 2_000,
    callTimeout: 5_000,
    ...options,
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

module.exports = { SyrosServer, syros, unique, connect, sleep };
