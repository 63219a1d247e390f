'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { SyrosServer, syros, unique, connect } = require('./helpers/common');

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

function orderSteps(service) {
  return [
    { name: 'reserve', service, action: 'reserve', compensation: 'unreserve' },
    { name: 'charge', service, action: 'charge', compensation: 'refund' },
    { name: 'ship', service, action: 'ship' },
  ];
}

test('a saga runs with Node handlers on the event loop and completes', async () => {
  const service = unique('inventory_service');
  const calls = [];
  const worker = client
    .worker(service, { maxConcurrent: 16 })
    .action('reserve', async (task) => {
      calls.push(task.handler);
      assert.equal(task.isCompensation, false);
      assert.ok(task.idempotencyKey);
      assert.ok(await task.heartbeat());
      return { reserved: task.input.qty };
    })
    .action('charge', async (task) => {
      calls.push(task.handler);
      assert.deepEqual(task.previousOutputs.reserve, { reserved: 3 });
      return { charged: true };
    })
    .action('ship', (task) => {
      calls.push(task.handler);
      return 'shipped';
    });
  const running = worker.run();
  const saga = await client.sagas.start({ name: 'order', steps: orderSteps(service), input: { qty: 3 } });
  assert.equal(typeof saga.sagaId, 'string');
  const done = await client.sagas.wait(saga.sagaId, { timeout: 20_000 });
  assert.equal(done.state, 'completed');
  assert.deepEqual(calls, ['reserve', 'charge', 'ship']);
  assert.deepEqual(done.steps[2].output, 'shipped');
  const got = await client.sagas.get(saga.sagaId);
  assert.equal(got.state, 'completed');
  const listed = await client.sagas.list({ state: 'completed', name: 'order' });
  assert.ok(listed.some((s) => s.sagaId === saga.sagaId));
  worker.stop();
  await running;
});

test('a failing step is compensated in reverse order; the saga ends compensated', async () => {
  const service = unique('payments');
  const calls = [];
  const worker = client
    .worker(service)
    .action('reserve', (task) => {
      calls.push(task.handler);
      return {};
    })
    .action('charge', (task) => {
      calls.push(task.handler);
      throw new syros.TaskFailure('card declined', { type: 'card_declined', nonRetryable: true });
    })
    .compensation('unreserve', (task) => {
      calls.push(task.handler);
      assert.equal(task.isCompensation, true);
      return {};
    });
  const controller = new AbortController();
  const running = worker.run({ signal: controller.signal });
  const saga = await client.sagas.start({ name: 'order', steps: orderSteps(service), input: {} });
  const done = await client.sagas.wait(saga.sagaId, { timeout: 20_000 });
  assert.equal(done.state, 'compensated');
  assert.deepEqual(calls, ['reserve', 'charge', 'unreserve']);
  const charge = done.steps.find((s) => s.name === 'charge');
  assert.equal(charge.attempts.at(-1).errorType, 'card_declined');
  controller.abort();
  await running;
});

test('cancel a running saga; idempotency keys; wait times out with DeadlineExceeded', async () => {
  const service = unique('nobody');
  const key = unique('idem');
  const first = await client.sagas.start({ name: 'idle', steps: orderSteps(service), idempotencyKey: key });
  const second = await client.sagas.start({ name: 'idle', steps: orderSteps(service), idempotencyKey: key });
  assert.equal(second.sagaId, first.sagaId);
  await assert.rejects(client.sagas.wait(first.sagaId, { timeout: 200 }), syros.DeadlineExceeded);
  const cancelled = await client.sagas.cancel(first.sagaId);
  assert.ok(['cancelled', 'compensating', 'compensated'].includes(cancelled.state), cancelled.state);
  await assert.rejects(client.sagas.get('no-such-saga'), (err) => err instanceof syros.SyrosError);
});
