'use strict';
// The one way the Node tests (and tests/conformance/node) start a server: a real `syros serve`
// on ephemeral ports (GRPC_PORT=0 ...) that reports its addresses in SYROS_READY_FILE, the same
// mechanism as tests/launcher (Rust). The binary is $SYROS_BIN; a test that cannot start its
// server fails with the reason and the server's log, it never skips.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const READY_TIMEOUT_MS = 60_000;

function syrosBin() {
  const bin = process.env.SYROS_BIN;
  if (!bin) {
    throw new Error(
      'SYROS_BIN is not set: build the server (`cargo build -p syros-server`) and export ' +
        'SYROS_BIN=<target dir>/debug/syros (scripts/node-sdk.sh does this)',
    );
  }
  if (!fs.existsSync(bin)) throw new Error(`SYROS_BIN=${bin} does not exist`);
  return bin;
}

function backendEnv(namespace) {
  const backend = process.env.SYROS_TEST_BACKEND || 'embedded';
  if (backend === 'embedded') return {};
  if (backend !== 'redis-postgres') {
    throw new Error(`SYROS_TEST_BACKEND=${backend}: expected "embedded" or "redis-postgres"`);
  }
  for (const name of ['SYROS_TEST_REDIS_URL', 'SYROS_TEST_DATABASE_URL']) {
    if (!process.env[name]) throw new Error(`${name} is not set (the redis-postgres backend needs it)`);
  }
  return {
    REDIS_URL: process.env.SYROS_TEST_REDIS_URL,
    DATABASE_URL: process.env.SYROS_TEST_DATABASE_URL,
    SYROS_NAMESPACE: namespace,
  };
}

/** A running `syros serve` child process. */
class SyrosServer {
  /** Start a server and wait until it reports ready. */
  static async start(options = {}) {
    const server = new SyrosServer(options);
    await server.spawn();
    return server;
  }

  constructor(options) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'syros-node-test-'));
    this.dataDir = path.join(this.dir, 'data');
    this.env = {
      ...process.env,
      SYROS_DATA_DIR: this.dataDir,
      LOG_LEVEL: 'info',
      ...backendEnv(`n${process.pid}${Date.now()}${Math.floor(Math.random() * 1e6)}`),
      ...(options.env || {}),
    };
    this.ports = null;
    this.ready = null;
    this.child = null;
    this.starts = 0;
  }

  get backend() {
    return process.env.SYROS_TEST_BACKEND || 'embedded';
  }

  /** `127.0.0.1:<grpc port>` (stable across restarts). */
  get grpcAddress() {
    return (this.ready || this.ports).grpc;
  }

  get pid() {
    return this.child ? this.child.pid : null;
  }

  async spawn() {
    const readyFile = path.join(this.dir, 'ready.json');
    fs.rmSync(readyFile, { force: true });
    this.starts += 1;
    const log = fs.openSync(path.join(this.dir, `syros-${this.starts}.log`), 'w');
    const port = (address) => (address ? address.split(':').pop() : '0');
    const child = spawn(syrosBin(), ['serve'], {
      env: {
        ...this.env,
        GRPC_PORT: port(this.ports && this.ports.grpc),
        REST_PORT: port(this.ports && this.ports.rest),
        WS_PORT: port(this.ports && this.ports.websocket),
        SYROS_READY_FILE: readyFile,
      },
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
    // A test process that ends without stop() (a failed hook, an uncaught error) must not leave
    // its server running.
    const reap = () => child.kill('SIGKILL');
    process.once('exit', reap);
    child.once('exit', () => process.removeListener('exit', reap));
    let exited = null;
    child.on('exit', (code, signal) => {
      exited = { code, signal };
    });
    this.child = child;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      try {
        const ready = JSON.parse(fs.readFileSync(readyFile, 'utf8'));
        if (ready.grpc && ready.rest && ready.websocket) {
          this.ready = ready;
          this.ports = this.ports || ready;
          return ready;
        }
      } catch {
        // Not written yet (or half written): look again.
      }
      if (exited) {
        throw new Error(`syros serve exited (${JSON.stringify(exited)}) before it was ready:\n${this.log()}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`syros serve was not ready within ${READY_TIMEOUT_MS} ms:\n${this.log()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** SIGKILL, as a crash would; waits until the process is gone. */
  async kill9() {
    const child = this.child;
    this.child = null;
    this.ready = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await gone;
  }

  /** Kill -9 (if running) and start again: same data, same ports. */
  async restart() {
    await this.kill9();
    await this.spawn();
  }

  /** Everything the server logged, over all its starts. */
  log() {
    const parts = [];
    for (let start = 1; start <= this.starts; start++) {
      try {
        parts.push(fs.readFileSync(path.join(this.dir, `syros-${start}.log`), 'utf8'));
      } catch {
        // A start that never opened its log.
      }
    }
    return parts.join('\n--- restart ---\n');
  }

  /** Kill it and remove its files. */
  async stop() {
    await this.kill9();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

module.exports = { SyrosServer, syrosBin };
