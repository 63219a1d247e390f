'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');
const { spawn } = require('node:child_process');
const { SyrosServer, syros, unique, connect, sleep } = require('./helpers/common');

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

test('lock, status, list, release: bigint fencing tokens that increase', async () => {
  const key = unique('orders');
  const lease = await client.lock(key, { ttl: 10_000, wait: 5_000 });
  assert.equal(typeof lease.fencingToken, 'bigint');
  assert.equal(lease.key, key);
  assert.equal(lease.held, true);
  assert.equal(lease.lost, false);
  assert.equal(lease.ttl, 10_000);
  const status = await client.lockStatus(key);
  assert.equal(status.leaseId, lease.leaseId);
  assert.equal(status.fencingToken, lease.fencingToken);
  const listed = await client.listLocks(key);
  assert.deepEqual(listed.map((l) => l.key), [key]);
  await lease.release();
  await lease.release(); // idempotent
  assert.equal(lease.held, false);
  assert.equal(await client.lockStatus(key), null);
  const again = await client.lock(key, { ttl: 10_000 });
  assert.ok(again.fencingToken > lease.fencingToken);
  const renewed = await again.renew();
  assert.ok(renewed.expiresAt >= renewed.acquiredAt);
  await again.release();
});

test('tryLock answers null on a held key; lock waits out with LockTimeout naming the holder', async () => {
  const key = unique('busy');
  const holder = await client.tryLock(key, { ttl: 10_000 });
  assert.ok(holder);
  assert.equal(await client.tryLock(key, { ttl: 10_000 }), null);
  await assert.rejects(client.lock(key, { ttl: 10_000, wait: 200 }), (err) => {
    assert.ok(err instanceof syros.LockTimeout);
    assert.ok(err instanceof syros.SyrosError);
    assert.equal(err.code, 'lock_timeout');
    assert.equal(err.retryable, false);
    assert.equal(err.details.holder_fencing_token, String(holder.fencingToken));
    return true;
  });
  await holder.release();
});

test('withLock releases after the callback, also when it throws; asyncDispose releases', async () => {
  const key = unique('with');
  const result = await client.withLock(key, { ttl: 5_000 }, async (lease) => {
    assert.equal((await client.lockStatus(key)).leaseId, lease.leaseId);
    return 42;
  });
  assert.equal(result, 42);
  assert.equal(await client.lockStatus(key), null);
  await assert.rejects(
    client.withLock(key, async () => {
      throw new Error('boom');
    }),
    /boom/,
  );
  assert.equal(await client.lockStatus(key), null);
  const lease = await client.lock(key, { ttl: 5_000 });
  await lease[Symbol.asyncDispose]();
  assert.equal(await client.lockStatus(key), null);
});

test('forceRelease drops the holder: its renew fails with LockNotHeld', async () => {
  const key = unique('forced');
  const lease = await client.lock(key, { ttl: 5_000 });
  const dropped = await client.forceRelease(key);
  assert.equal(dropped.leaseId, lease.leaseId);
  await assert.rejects(lease.renew(), syros.LockNotHeld);
});

test('an aborted wait rejects with AbortError and leaves no lease behind', async () => {
  const key = unique('abort');
  const holder = await client.lock(key, { ttl: 10_000 });
  const controller = new AbortController();
  const waiting = client.lock(key, { ttl: 10_000, wait: 30_000, signal: controller.signal });
  await sleep(200);
  const abortedAt = Date.now();
  controller.abort();
  await assert.rejects(waiting, (err) => {
    assert.equal(err.name, 'AbortError');
    assert.ok(err instanceof syros.Cancelled);
    return true;
  });
  assert.ok(Date.now() - abortedAt < 5_000, 'the wait ended with the abort');
  await holder.release();
  await sleep(300);
  assert.equal(await client.lockStatus(key), null, 'the aborted waiter was not granted the key');
  // An already aborted signal rejects at once.
  await assert.rejects(client.lock(key, { signal: AbortSignal.abort() }), { name: 'AbortError' });
  // waitLost and sagas.wait take a signal too.
  const lease = await client.lock(key, { ttl: 10_000 });
  const lostWait = new AbortController();
  setTimeout(() => lostWait.abort(), 100);
  await assert.rejects(lease.waitLost({ signal: lostWait.signal }), { name: 'AbortError' });
  await lease.release();
});

test('a lease stays renewed while the event loop is blocked for 3x its renewal interval', async () => {
  const key = unique('blocked');
  // TTL 900 ms: renewed about every 300 ms; block the loop for 3 s (10 renewal intervals,
  // more than 3x the whole TTL).
  const lease = await client.lock(key, { ttl: 900 });
  const until = Date.now() + 3_000;
  while (Date.now() < until) {
    // Synchronous work: Node's event loop cannot run anything meanwhile.
  }
  assert.equal(lease.lost, false);
  assert.equal(lease.held, true);
  assert.equal((await client.lockStatus(key)).leaseId, lease.leaseId, 'still ours on the server');
  assert.equal(await client.tryLock(key, { ttl: 1_000 }), null);
  await lease.release();
});

test('lost fires (onLost and waitLost) when the server is gone past the TTL', async () => {
  const own = await SyrosServer.start();
  const lonely = await connect(own, {
    retry: { initialInterval: 20, maxInterval: 100, maxAttempts: 3, deadline: 500 },
  });
  try {
    const lease = await lonely.lock(unique('orphan'), { ttl: 1_000 });
    let lostCalls = 0;
    lease.onLost(() => {
      lostCalls += 1;
    });
    assert.equal(await lease.waitLost({ timeout: 300 }), false, 'held while the server renews it');
    await own.kill9();
    const started = Date.now();
    assert.equal(await lease.waitLost({ timeout: 10_000 }), true);
    assert.ok(Date.now() - started < 8_000, 'lost within a few TTLs');
    await sleep(50);
    assert.equal(lease.lost, true);
    assert.equal(lostCalls, 1);
  } finally {
    await lonely.close();
    await own.stop();
  }
});

test('4 Node processes keep a shared file counter exact under one lock', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'syros-counter-'));
  const file = path.join(dir, 'counter');
  fs.writeFileSync(file, '0');
  const key = unique('counter');
  const perProcess = 25;
  const workers = Array.from({ length: 4 }, () => {
    const child = spawn(
      process.execPath,
      [path.join(__dirname, 'helpers', 'counter_worker.js'), server.grpcAddress, key, file, String(perProcess)],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    return new Promise((resolve, reject) => {
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`counter worker exited ${code}`))));
    });
  });
  await Promise.all(workers);
  assert.equal(Number(fs.readFileSync(file, 'utf8')), 4 * perProcess);
  fs.rmSync(dir, { recursive: true, force: true });
});
