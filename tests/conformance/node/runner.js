'use strict';
// The Node runner of the conformance scenarios (tests/conformance/scenarios), over the `syros`
// package (sdks/node), mirroring the Rust runner: a fresh `syros serve` per scenario (the one
// launcher mechanism, sdks/node/test/helpers/server.js), one line per scenario (`PASS name` /
// `FAIL name: reason`) and `N passed, N failed`; exits 1 when any failed or none ran.
//
// Usage: node tests/conformance/node/runner.js [SCENARIO_DIR] [NAME_FILTER]
// (SYROS_BIN names the server; SYROS_TEST_BACKEND=redis-postgres picks the backend.)
const fs = require('node:fs');
const path = require('node:path');
const sdk = path.join(__dirname, '..', '..', '..', 'sdks', 'node');
const syros = require(sdk);
const { SyrosServer } = require(path.join(sdk, 'test', 'helpers', 'server.js'));

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class StepError extends Error {}
function ensure(condition, message) {
  if (!condition) throw new StepError(typeof message === 'function' ? message() : message);
}
function text(step, name) {
  ensure(typeof step[name] === 'string', `step ${JSON.stringify(step)} needs a string \`${name}\``);
  return step[name];
}
const num = (step, name, fallback) => (typeof step[name] === 'number' ? step[name] : fallback);
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/** Run `call`; check it against `expect.error` (or success when absent). */
async function checkError(step, call) {
  const wanted = step.expect && step.expect.error;
  try {
    const value = await call();
    ensure(!wanted, `expected error ${wanted}, the call succeeded`);
    return { value };
  } catch (err) {
    if (err instanceof StepError) throw err;
    if (!wanted) throw new StepError(`unexpected error ${err.code || err.name}: ${err.message}`);
    ensure(err.code === wanted, `expected error ${wanted}, got ${err.code}: ${err.message}`);
    return null;
  }
}

class Run {
  constructor(server, name) {
    this.server = server;
    this.id = `${name}-${process.pid}`;
    this.client = null;
    this.leases = new Map();
    this.pending = new Map();
    this.subscriptions = new Map();
    this.saved = new Map();
  }

  getClient() {
    if (!this.client) {
      this.client = new syros.Client({ addresses: [this.server.grpcAddress], connectTimeout: 2_000, callTimeout: 10_000 });
    }
    return this.client;
  }

  resolve(value) {
    if (typeof value === 'string' && value.startsWith('$')) {
      const [name, field] = value.slice(1).split('.', 2);
      ensure(field, `reference ${value} needs a field`);
      ensure(this.saved.has(name), `nothing saved as ${name}`);
      const saved = this.saved.get(name);
      ensure(field in saved, `${name} has no field ${field}`);
      return saved[field];
    }
    if (typeof value === 'string') return value.split('{id}').join(this.id);
    if (Array.isArray(value)) return value.map((v) => this.resolve(v));
    if (value && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.resolve(v)]));
    }
    return value;
  }

  keepLease(name, lease) {
    if (!name) return;
    this.saved.set(name, { lease_id: lease.leaseId, fencing_token: Number(lease.fencingToken), key: lease.key });
    this.leases.set(name, lease);
  }

  lease(step, field = 'lease') {
    const name = text(step, field);
    ensure(this.leases.has(name), `no lease saved as ${name}`);
    return this.leases.get(name);
  }

  subscription(step) {
    const name = text(step, 'subscription');
    ensure(this.subscriptions.has(name), `no subscription saved as ${name}`);
    return this.subscriptions.get(name);
  }

  async scenario(scenario) {
    ensure(Array.isArray(scenario.steps), 'a scenario needs `steps`');
    for (const [index, raw] of scenario.steps.entries()) {
      const step = this.resolve(raw);
      try {
        await this.step(step.op, step);
      } catch (err) {
        throw new StepError(`step ${index + 1} (${step.op}): ${err.message}`);
      }
    }
  }

  async finish() {
    for (const { abort } of this.pending.values()) abort.abort();
    if (this.client) await this.client.close();
  }

  async step(op, step) {
    const client = this.getClient();
    const expect = step.expect || {};
    const lockOptions = { ttl: num(step, 'ttl_ms', 5_000), wait: num(step, 'wait_ms', 0) };
    switch (op) {
      case 'lock': {
        const result = await checkError(step, () => client.lock(text(step, 'key'), lockOptions));
        if (result) this.keepLease(step.save, result.value);
        break;
      }
      case 'try_lock': {
        const lease = await client.tryLock(text(step, 'key'), lockOptions);
        if (typeof expect.acquired === 'boolean') ensure((lease !== null) === expect.acquired, `expected acquired=${expect.acquired}`);
        if (lease) this.keepLease(step.save, lease);
        break;
      }
      case 'lock_async': {
        const abort = new AbortController();
        const entry = { abort, done: false, result: null };
        entry.promise = client.lock(text(step, 'key'), { ...lockOptions, signal: abort.signal }).then(
          (lease) => {
            entry.done = true;
            return lease;
          },
          (err) => {
            entry.done = true;
            throw err;
          },
        );
        entry.promise.catch(() => {});
        this.pending.set(text(step, 'save'), entry);
        break;
      }
      case 'await_lease': {
        const name = text(step, 'name');
        const entry = this.pending.get(name);
        ensure(entry, `nothing pending as ${name}`);
        this.pending.delete(name);
        const within = num(step, 'within_ms', 5_000);
        let timer;
        const lease = await Promise.race([
          entry.promise,
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new StepError(`${name} was not granted within ${within} ms`)), within);
          }),
        ]).finally(() => clearTimeout(timer));
        this.keepLease(name, lease);
        break;
      }
      case 'expect_pending': {
        const name = text(step, 'name');
        await sleep(num(step, 'for_ms', 0));
        const entry = this.pending.get(name);
        ensure(entry, `nothing pending as ${name}`);
        ensure(!entry.done, `${name} was already granted (out of order)`);
        break;
      }
      case 'release':
        await this.lease(step).release();
        break;
      case 'renew':
        await checkError(step, () => this.lease(step).renew());
        break;
      case 'lease_state': {
        const lease = this.lease(step);
        if (typeof expect.held === 'boolean') ensure(lease.held === expect.held, `expected held=${expect.held}`);
        if (typeof expect.lost === 'boolean') ensure(lease.lost === expect.lost, `expected lost=${expect.lost}`);
        break;
      }
      case 'wait_end': {
        const lease = this.lease(step);
        const timeout = num(step, 'timeout_ms', 1_000);
        const lost = await lease.waitLost({ timeout });
        const end = lost ? 'lost' : lease.held ? 'timed_out' : 'released';
        ensure(end === expect.end, `expected ${expect.end}, the wait ended ${end}`);
        break;
      }
      case 'lock_status': {
        const holder = await client.lockStatus(text(step, 'key'));
        if (expect.free === true) ensure(holder === null, () => `expected free, held by ${JSON.stringify(holder && holder.leaseId)}`);
        if (expect.lease_id) ensure(holder && holder.leaseId === expect.lease_id, () => `expected lease ${expect.lease_id}, holder ${holder && holder.leaseId}`);
        break;
      }
      case 'force_release':
        await client.forceRelease(text(step, 'key'));
        break;
      case 'cache_set': {
        let value = step.value;
        if (value && typeof value === 'object') value = String(value.repeat || 'x').repeat(value.times || 1);
        ensure(typeof value === 'string', `bad cache value ${JSON.stringify(step.value)}`);
        await checkError(step, () => client.cache.set(text(step, 'key'), value, { ttl: step.ttl_ms, tags: step.tags || [] }));
        break;
      }
      case 'cache_get': {
        const value = await client.cache.get(text(step, 'key'));
        if (expect.missing === true) ensure(value === null, 'expected no value');
        if (typeof expect.value === 'string') {
          const got = value && value.toString('utf8');
          ensure(got === expect.value, `expected ${JSON.stringify(expect.value)}, got ${JSON.stringify(got)}`);
        }
        break;
      }
      case 'cache_invalidate_tag': {
        const removed = await client.cache.invalidateTag(text(step, 'tag'));
        if (typeof expect.removed === 'number') ensure(removed === expect.removed, `removed ${removed}, expected ${expect.removed}`);
        break;
      }
      case 'append': {
        ensure(Array.isArray(step.events), 'append needs events');
        const events = step.events.map((e) => ({ type: e.type || 'Event', data: e.data ?? null }));
        const expectedVersion = step.expected ?? 'any';
        const result = await checkError(step, () => client.events.append(text(step, 'stream'), events, { expectedVersion }));
        if (result && typeof expect.last_version === 'number') {
          ensure(result.value.lastVersion === expect.last_version, `last version ${result.value.lastVersion}, expected ${expect.last_version}`);
        }
        break;
      }
      case 'read': {
        const read = await client.events.read(text(step, 'stream'), { from: 0 });
        const versions = read.events.map((e) => e.version);
        const types = read.events.map((e) => e.type);
        if (expect.versions) ensure(same(versions, expect.versions), `versions ${JSON.stringify(versions)}, expected ${JSON.stringify(expect.versions)}`);
        if (expect.types) ensure(same(types, expect.types), `types ${JSON.stringify(types)}, expected ${JSON.stringify(expect.types)}`);
        break;
      }
      case 'subscribe': {
        const subscription = client.events.subscribe(text(step, 'stream'), { from: step.from ?? 'start' });
        await subscription._open();
        this.subscriptions.set(text(step, 'save'), subscription);
        break;
      }
      case 'next_events': {
        const subscription = this.subscription(step);
        const deadline = Date.now() + num(step, 'timeout_ms', 5_000);
        const versions = [];
        while (versions.length < num(step, 'count', 1)) {
          const item = await subscription.next({ timeout: Math.max(1, deadline - Date.now()) });
          ensure(!item.timedOut, () => `only got versions ${JSON.stringify(versions)} in time`);
          ensure(!item.done, 'the subscription ended');
          versions.push(item.value.version);
        }
        if (expect.versions) ensure(same(versions, expect.versions), `versions ${JSON.stringify(versions)}, expected ${JSON.stringify(expect.versions)}`);
        break;
      }
      case 'expect_no_event': {
        const item = await this.subscription(step).next({ timeout: num(step, 'within_ms', 500) });
        ensure(item.timedOut, () => `expected no event, got ${JSON.stringify(item.value)}`);
        break;
      }
      case 'close':
        this.subscription(step).close();
        break;
      case 'start_saga': {
        ensure(Array.isArray(step.steps), 'start_saga needs steps');
        const saga = await client.sagas.start({
          name: text(step, 'name'),
          input: step.input ?? {},
          steps: step.steps.map((s) => ({
            name: s.name,
            service: s.service,
            action: s.action,
            compensation: s.compensation,
            timeout: s.timeout_ms,
          })),
        });
        if (step.save) this.saved.set(step.save, { saga_id: saga.sagaId });
        break;
      }
      case 'run_worker':
        await this.runWorker(client, step);
        break;
      case 'compare': {
        const { left, right, cmp = '==' } = step;
        ensure(typeof left === 'number' && typeof right === 'number', 'compare needs numbers');
        const holds = { '>': left > right, '>=': left >= right, '==': left === right, '!=': left !== right }[cmp];
        ensure(holds !== undefined, `unknown comparison ${cmp}`);
        ensure(holds, `expected ${left} ${cmp} ${right}`);
        break;
      }
      case 'sleep':
        await sleep(num(step, 'ms', 0));
        break;
      case 'restart_server':
      case 'start_server':
        await this.server.restart();
        break;
      case 'stop_server':
        await this.server.kill9();
        break;
      default:
        throw new StepError(`unknown operation ${JSON.stringify(op)}`);
    }
  }

  /** A worker with the scripted handlers (run on the event loop) until the saga is final. */
  async runWorker(client, step) {
    const sagaId = text(step, 'saga');
    const calls = [];
    const worker = client.worker(text(step, 'service'), { maxConcurrent: 4 });
    for (const [handler, behaviour] of Object.entries(step.script || {})) {
      worker.action(handler, () => {
        calls.push(handler);
        if ('complete' in behaviour) return behaviour.complete;
        const failure = behaviour.fail || {};
        throw new syros.TaskFailure(failure.message || '', {
          type: failure.error_type || 'failed',
          nonRetryable: Boolean(failure.non_retryable),
        });
      });
    }
    const running = worker.run();
    let saga;
    try {
      saga = await client.sagas.wait(sagaId, { timeout: num(step, 'timeout_ms', 20_000) });
    } catch (err) {
      throw new StepError(`the saga did not finish in time (${err.code}); calls so far ${JSON.stringify(calls)}`);
    } finally {
      worker.stop();
      await running;
    }
    const expect = step.expect || {};
    if (expect.calls) ensure(same(calls, expect.calls), `handlers ran ${JSON.stringify(calls)}, expected ${JSON.stringify(expect.calls)}`);
    if (expect.state) ensure(saga.state === expect.state, `saga ended ${saga.state}, expected ${expect.state}`);
  }
}

async function main() {
  const dir = process.argv[2] || path.join(__dirname, '..', 'scenarios');
  const filter = process.argv[3];
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  const backend = process.env.SYROS_TEST_BACKEND || 'embedded';
  let passed = 0;
  let failed = 0;
  for (const file of files) {
    let scenario;
    try {
      scenario = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
    } catch (err) {
      console.log(`FAIL ${file}: not valid JSON: ${err.message}`);
      failed += 1;
      continue;
    }
    const name = scenario.name || 'unnamed';
    if (filter && !name.includes(filter)) continue;
    const started = Date.now();
    let server = null;
    let run = null;
    try {
      server = await SyrosServer.start();
      run = new Run(server, name);
      await run.scenario(scenario);
      passed += 1;
      console.log(`PASS ${name} (${((Date.now() - started) / 1000).toFixed(1)}s, ${backend})`);
    } catch (err) {
      failed += 1;
      console.log(`FAIL ${name} (${backend}): ${err.message}`);
    } finally {
      if (run) await run.finish().catch(() => {});
      if (server) await server.stop();
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
}

main().catch((err) => {
  console.log(`FAIL runner: ${err.stack || err}`);
  console.log('0 passed, 1 failed');
  process.exitCode = 1;
});
