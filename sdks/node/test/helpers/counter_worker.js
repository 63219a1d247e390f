'use strict';
// One of the processes of the counter test: increments a file counter `times` times, each
// read-modify-write under the Syros lock `key` (with a yield inside, so a missing lock would
// lose updates).
const fs = require('node:fs');
const syros = require('../..');

async function main() {
  const [address, key, file, times] = process.argv.slice(2);
  const client = await syros.Client.connect({ addresses: [address] });
  for (let i = 0; i < Number(times); i++) {
    await client.withLock(key, { ttl: 5_000, wait: 30_000 }, async () => {
      const value = Number(fs.readFileSync(file, 'utf8'));
      await new Promise((resolve) => setImmediate(resolve));
      fs.writeFileSync(file, String(value + 1));
    });
  }
  await client.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
