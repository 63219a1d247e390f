'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
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

test('cache get/set/delete with Buffers and strings, TTL and tags', async () => {
  const key = unique('product');
  assert.equal(await client.cache.get(key), null);
  await client.cache.set(key, 'caf\u00e9', { tags: [`${key}:tag`] });
  assert.ok(Buffer.isBuffer(await client.cache.get(key)));
  assert.equal((await client.cache.get(key)).toString('utf8'), 'caf\u00e9');
  const binary = Buffer.from([0, 255, 1, 254]);
  const expires = await client.cache.set(`${key}:bin`, binary, { ttl: 60_000 });
  assert.ok(expires > Date.now());
  assert.deepEqual(await client.cache.get(`${key}:bin`), binary);
  const entry = await client.cache.getEntry(key);
  assert.deepEqual(entry.tags, [`${key}:tag`]);
  assert.equal(await client.cache.invalidateTag(`${key}:tag`), 1);
  assert.equal(await client.cache.get(key), null);
  assert.equal(await client.cache.delete(`${key}:bin`), true);
  assert.equal(await client.cache.delete(`${key}:bin`), false);
  await client.cache.set(`${key}:short`, 'v', { ttl: 100 });
  await sleep(400);
  assert.equal(await client.cache.get(`${key}:short`), null, 'expired');
});

test('getOrCompute: one computation for concurrent callers; a failure reaches all and stores nothing', async () => {
  const key = unique('price');
  let computed = 0;
  const compute = async () => {
    computed += 1;
    await sleep(100);
    return 'forty-two';
  };
  const values = await Promise.all(
    Array.from({ length: 5 }, () => client.cache.getOrCompute(key, compute, { ttl: 60_000, tags: ['prices'] })),
  );
  assert.equal(computed, 1);
  for (const value of values) assert.equal(value.toString(), 'forty-two');
  assert.equal((await client.cache.get(key)).toString(), 'forty-two');
  assert.equal((await client.cache.getOrCompute(key, compute)).toString(), 'forty-two');
  assert.equal(computed, 1, 'a hit does not compute');

  const failing = unique('failing');
  const results = await Promise.allSettled(
    Array.from({ length: 3 }, () =>
      client.cache.getOrCompute(failing, async () => {
        await sleep(50);
        throw new Error('backend down');
      }),
    ),
  );
  for (const result of results) assert.equal(result.status, 'rejected');
  const reasons = results.map((r) => r.reason);
  assert.equal(reasons.filter((e) => e.message === 'backend down').length, 1, 'the computing caller gets its own error');
  for (const reason of reasons.filter((e) => e.message !== 'backend down')) {
    assert.ok(reason instanceof syros.CallbackFailed, `${reason}`);
  }
  assert.equal(await client.cache.get(failing), null);
});

test('append with expected versions, VersionConflict, read and readAll', async () => {
  const stream = unique('order');
  const appended = await client.events.append(
    stream,
    [
      { type: 'Created', data: { id: 1 } },
      { type: 'Paid', data: { amount: 10 }, metadata: { by: 'test' } },
    ],
    { expectedVersion: 'no_stream' },
  );
  assert.equal(appended.lastVersion, 1);
  await assert.rejects(
    client.events.append(stream, [{ type: 'Stale', data: {} }], { expectedVersion: 0 }),
    (err) => err instanceof syros.VersionConflict && err.code === 'version_conflict',
  );
  await client.events.append(stream, [{ type: 'Shipped' }], { expectedVersion: 1 });
  const read = await client.events.read(stream);
  assert.deepEqual(read.events.map((e) => e.version), [0, 1, 2]);
  assert.deepEqual(read.events.map((e) => e.type), ['Created', 'Paid', 'Shipped']);
  assert.deepEqual(read.events[1].data, { amount: 10 });
  assert.deepEqual(read.events[1].metadata, { by: 'test' });
  const backwards = await client.events.read(stream, { backwards: true, limit: 2 });
  assert.deepEqual(backwards.events.map((e) => e.version), [2, 1]);
  const all = await client.events.readAll({ from: appended.firstPosition, limit: 10 });
  assert.ok(all.events.some((e) => e.stream === stream && e.type === 'Created'));
});

test('subscribe: catch-up then live with for await; subscribeAll; abort and close end it', async () => {
  const stream = unique('feed');
  await client.events.append(stream, [{ type: 'E', data: { n: 0 } }, { type: 'E', data: { n: 1 } }]);
  const seen = [];
  const following = (async () => {
    for await (const event of client.events.subscribe(stream, { from: 'start' })) {
      seen.push(event.version);
      if (seen.length === 4) break;
    }
  })();
  await sleep(200);
  await client.events.append(stream, [{ type: 'E', data: { n: 2 } }, { type: 'E', data: { n: 3 } }]);
  await following;
  assert.deepEqual(seen, [0, 1, 2, 3]);

  const all = client.events.subscribeAll({ from: 'end' });
  const next = all.next({ timeout: 5_000 });
  await sleep(200);
  await client.events.append(stream, [{ type: 'Late', data: {} }]);
  const item = await next;
  assert.equal(item.value.type, 'Late');
  assert.equal((await all.next({ timeout: 50 })).timedOut, true);
  all.close();
  assert.equal((await all.next()).done, true);

  const controller = new AbortController();
  const aborted = (async () => {
    for await (const event of client.events.subscribe(stream, { from: 'end', signal: controller.signal })) {
      assert.fail(`no event expected, got ${event.type}`);
    }
  })();
  await sleep(100);
  controller.abort();
  await assert.rejects(aborted, { name: 'AbortError' });
});
