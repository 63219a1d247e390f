// Type-checked by `tsc --noEmit -p test/types` (scripts/node-sdk.sh): the declarations cover
// what the README shows, including `await using` (TypeScript >= 5.2).
import { Client, LockTimeout, SyrosError, TaskFailure, type Lease, type RecordedEvent } from 'syros';

export async function usage(): Promise<void> {
  const client = await Client.connect({ addresses: ['127.0.0.1:9090'], authToken: 't' });
  {
    await using lease = await client.lock('orders:42', { ttl: 10_000, wait: 5_000 });
    const token: bigint = lease.fencingToken;
    lease.onLost((l: Lease) => console.log(l.key, token));
  }
  const result: number = await client.withLock('k', { ttl: 1_000 }, async (lease) => Number(lease.fencingToken));
  const value: Buffer = await client.cache.getOrCompute('k', async () => 'v', { ttl: 60_000, tags: ['t'] });
  await client.events.append('orders', [{ type: 'Created', data: { id: 1 } }], { expectedVersion: 'no_stream' });
  for await (const event of client.events.subscribe('orders', { from: 'start' })) {
    const e: RecordedEvent = event;
    console.log(e.version, result, value.length);
    break;
  }
  const worker = client.worker('inventory_service', { maxConcurrent: 16 });
  worker.action('reserve', async (task) => ({ reserved: task.input.qty })).compensation('unreserve', () => {
    throw new TaskFailure('nope', { type: 'x', nonRetryable: true });
  });
  const running: Promise<void> = worker.run({ signal: AbortSignal.timeout(1_000) });
  worker.stop();
  await running;
  try {
    await client.lock('k', { wait: 0 });
  } catch (err) {
    if (err instanceof LockTimeout || err instanceof SyrosError) console.log(err.code, err.retryable, err.details);
  }
  await client.close();
}
