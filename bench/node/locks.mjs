// Lock cycles/s (acquire with TTL 10 s + release) with 32 concurrent async loops, each on its
// own key: the syros Node SDK against redlock 5 + ioredis (Node's favourite Redis lock), on the
// same Redis, in the same run; prints both and the ratio (goal >= 1.0x). Not a test.
//
//   node bench/node/locks.mjs <syros grpc address> <redis url> [seconds per side]
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const syros = require(path.join(here, '..', '..', 'sdks', 'node'));
const Redis = require('ioredis');
const RedlockModule = require('redlock');
const Redlock = RedlockModule.default || RedlockModule.Redlock || RedlockModule;

const [address, redisUrl, secondsArg] = process.argv.slice(2);
const LOOPS = 32;
const SECONDS = Number(secondsArg || 5);
const TTL = 10_000;

async function measure(name, cycle) {
  // Warm up, then count cycles in a fixed window.
  const warmUntil = Date.now() + 1_000;
  await Promise.all(Array.from({ length: LOOPS }, async (_, loop) => {
    while (Date.now() < warmUntil) await cycle(loop);
  }));
  let cycles = 0;
  const started = process.hrtime.bigint();
  const until = Date.now() + SECONDS * 1_000;
  await Promise.all(Array.from({ length: LOOPS }, async (_, loop) => {
    while (Date.now() < until) {
      await cycle(loop);
      cycles += 1;
    }
  }));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const rate = cycles / seconds;
  console.log(`${name}: ${Math.round(rate)} cycles/s (${cycles} cycles in ${seconds.toFixed(1)} s, ${LOOPS} loops)`);
  return rate;
}

const run = `${process.pid}`;
const redis = new Redis(redisUrl);
const redlock = new Redlock([redis], { retryCount: 0 });
const peer = await measure('redlock 5 + ioredis', async (loop) => {
  const lock = await redlock.acquire([`bench:redlock:${run}:${loop}`], TTL);
  await lock.release();
});
await redis.quit();

const client = await syros.Client.connect({ addresses: [address] });
const ours = await measure('syros Node SDK', async (loop) => {
  const lease = await client.lock(`bench:syros:${run}:${loop}`, { ttl: TTL, wait: 5_000 });
  await lease.release();
});
await client.close();
console.log(`ratio syros/redlock: ${(ours / peer).toFixed(2)}x (goal >= 1.0x)`);
