'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { SyrosServer, syros, unique, connect } = require('./helpers/common');
const native = require('../lib/native');

let server;
let client;
before(async () => {
  server = await SyrosServer.start();
  client = await connect(server);
});
after(async () => {
  await client.close();
  await server.stop();
});

test('every error code of the core has its class under SyrosError', () => {
  for (const code of native.errorCodes()) {
    const cls = syros.errorClasses[code];
    assert.ok(cls, `no class for ${code}`);
    assert.ok(new cls('x') instanceof syros.SyrosError);
    assert.equal(new cls('x').code, code);
  }
  assert.equal(new syros.AbortError().name, 'AbortError');
});

test('errors arrive as the documented classes with code, retryable and details', async () => {
  await assert.rejects(client.lock('', { ttl: 1_000 }), (err) => {
    assert.ok(err instanceof syros.InvalidArgument);
    assert.equal(err.code, 'invalid_argument');
    assert.equal(err.retryable, false);
    return true;
  });
  await assert.rejects(client.lock(unique('k'), { ttl: -5 }), syros.InvalidArgument);
  await assert.rejects(client.cache.set(unique('big'), Buffer.alloc(1_048_577, 'x')), syros.PayloadTooLarge);
  await assert.rejects(client.events.append(unique('s'), []), syros.InvalidArgument);
  await assert.rejects(client.cache.set('k', 12), syros.InvalidArgument);
  await assert.rejects(syros.Client.connect({ addresses: [] }), syros.InvalidArgument);
  // Nobody listens there: Unavailable, retryable.
  const own = await SyrosServer.start();
  const address = own.grpcAddress;
  await own.stop();
  await assert.rejects(
    syros.Client.connect({ addresses: [address], connectTimeout: 500, retry: { maxAttempts: 1 } }),
    (err) => {
      assert.ok(err instanceof syros.Unavailable, `${err.name}: ${err.message}`);
      assert.equal(err.retryable, true);
      return true;
    },
  );
  client.setAuthToken('not-checked-by-this-server');
  client.setAuthToken(null);
  assert.ok(client.owner.length > 0);
  await client.checkHealth();
  assert.ok(client.stats().calls > 0);
});

test('a closed client refuses calls with Cancelled and ends its workers, subscriptions and leases', async () => {
  const closing = await connect(server);
  const key = unique('held');
  await closing.lock(key, { ttl: 10_000 });
  const worker = closing.worker(unique('svc'));
  const running = worker.run();
  const subscription = closing.events.subscribe(unique('s'));
  const pending = subscription.next();
  await closing.close();
  await running;
  assert.equal((await pending).done, true);
  assert.equal(await client.lockStatus(key), null, 'close released the lease');
  await assert.rejects(closing.lockStatus(key), syros.Cancelled);
  await closing.close(); // idempotent
});

function runScript(source) {
  return spawnSync(process.execPath, ['-e', source], {
    cwd: path.join(__dirname, '..'),
    env: { ...process.env, SYROS_ADDRESS: server.grpcAddress },
    encoding: 'utf8',
    timeout: 30_000,
  });
}

test('the process exits normally once the client is closed, or left to the garbage collector', () => {
  const closed = runScript(`
    const syros = require('.');
    (async () => {
      const client = await syros.Client.connect({ addresses: [process.env.SYROS_ADDRESS] });
      const lease = await client.lock('exit-' + process.pid, { ttl: 10000 });
      lease.onLost(() => {});
      client.events.subscribe('exit-' + process.pid).next().catch(() => {});
      client.worker('exit-svc').run();
      await client.close();
      console.log('closed');
    })();
  `);
  assert.equal(closed.status, 0, closed.stderr);
  assert.match(closed.stdout, /closed/);
  const dropped = runScript(`
    const syros = require('.');
    (async () => {
      const client = await syros.Client.connect({ addresses: [process.env.SYROS_ADDRESS] });
      await client.cache.set('exit-' + process.pid, 'v');
      console.log('done');
    })();
  `);
  assert.equal(dropped.status, 0, dropped.stderr);
  assert.match(dropped.stdout, /done/);
});

test('a pending call keeps the process alive until it settles; a worker ended mid-call does not crash it', () => {
  // Nothing but the waiter's pending promise keeps the event loop alive here: the process must
  // stay until it settles (LockTimeout), then exit by itself.
  const pending = runScript(`
    const syros = require('.');
    (async () => {
      const key = 'alive-' + process.pid;
      const holder = await syros.Client.connect({ addresses: [process.env.SYROS_ADDRESS] });
      await holder.lock(key, { ttl: 10000 });
      const waiter = await syros.Client.connect({ addresses: [process.env.SYROS_ADDRESS] });
      waiter.lock(key, { ttl: 10000, wait: 700 }).then(
        () => console.log('acquired'),
        (err) => console.log('settled ' + err.constructor.name),
      );
    })();
  `);
  assert.equal(pending.status, 0, pending.stderr);
  assert.match(pending.stdout, /settled LockTimeout/);
  // A worker thread terminated while its call waits: the call ends after the worker's
  // environment is gone, and the process goes on (and exits) unharmed.
  const worker = runScript(`
    const { Worker } = require('node:worker_threads');
    const source = \`
      const { parentPort } = require('node:worker_threads');
      const syros = require(process.cwd());
      (async () => {
        const key = 'worker-' + process.pid;
        const holder = await syros.Client.connect({ addresses: [process.env.SYROS_ADDRESS] });
        await holder.lock(key, { ttl: 10000 });
        const waiter = await syros.Client.connect({ addresses: [process.env.SYROS_ADDRESS] });
        waiter.lock(key, { ttl: 10000, wait: 500 }).catch(() => {});
        parentPort.postMessage('waiting');
      })();
    \`;
    const thread = new Worker(source, { eval: true });
    thread.once('message', async () => {
      await thread.terminate();
      setTimeout(() => console.log('alive after the call ended'), 1200);
    });
  `);
  assert.equal(worker.status, 0, worker.stderr);
  assert.match(worker.stdout, /alive after the call ended/);
});

test('ESM import and CommonJS require give the same classes', () => {
  const esm = spawnSync(
    process.execPath,
    ['--input-type=module', '-e', "import { Client, LockTimeout } from 'syros'; import syros from 'syros'; console.log(typeof Client, syros.LockTimeout === LockTimeout)"],
    { cwd: path.join(__dirname, 'helpers'), encoding: 'utf8', env: { ...process.env, NODE_PATH: '' } },
  );
  // Resolve 'syros' from the package itself (self-reference through "exports").
  assert.equal(esm.status, 0, esm.stderr);
  assert.match(esm.stdout, /function true/);
});
