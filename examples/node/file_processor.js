'use strict';
// SyncFlow-style idempotent file processor: several Node worker processes race over the same
// uploaded files; one Syros lock per file makes each file processed exactly once, and each result
// is appended as an event to the `uploads` stream (expected version "no_stream" per file stream,
// so a second processing could not even record itself). Checks its own outcome; exit 1 if wrong.
//
//   node examples/node/file_processor.js 127.0.0.1:9090
const { fork } = require('node:child_process');
const path = require('node:path');
const syros = require(process.env.SYROS_NODE_PACKAGE || path.join(__dirname, '..', '..', 'sdks', 'node'));

const address = process.argv[2] || '127.0.0.1:9090';
const FILES = 12;
const PROCESSES = 3;

async function workerProcess(run) {
  const client = await syros.Client.connect({ addresses: [address] });
  let processed = 0;
  for (let n = 0; n < FILES; n++) {
    const file = `upload-${run}-${n}.csv`;
    // Try once: another process holding the file's lock is processing it.
    const lease = await client.tryLock(`files:${file}`, { ttl: 10_000 });
    if (!lease) continue;
    try {
      const done = await client.events.read(`file-${file}`, { limit: 1 });
      if (done.events.length > 0) continue; // processed earlier by someone else
      await new Promise((resolve) => setTimeout(resolve, 20)); // "parse the upload"
      await client.events.append(
        `file-${file}`,
        [{ type: 'FileProcessed', data: { file, by: process.pid, fencingToken: String(lease.fencingToken) } }],
        { expectedVersion: 'no_stream' },
      );
      processed += 1;
    } finally {
      await lease.release();
    }
  }
  await client.close();
  process.send({ processed });
}

async function main() {
  const run = `${Date.now().toString(36)}-${process.pid}`;
  const children = Array.from({ length: PROCESSES }, () => fork(__filename, [address, '--worker', run]));
  const counts = await Promise.all(
    children.map(
      (child) =>
        new Promise((resolve, reject) => {
          let processed = null;
          child.on('message', (m) => (processed = m.processed));
          child.on('exit', (code) => (code === 0 ? resolve(processed) : reject(new Error(`worker exited ${code}`))));
        }),
    ),
  );
  const client = await syros.Client.connect({ addresses: [address] });
  let recorded = 0;
  for (let n = 0; n < FILES; n++) {
    const read = await client.events.read(`file-upload-${run}-${n}.csv`);
    if (read.events.length !== 1) throw new Error(`file ${n} has ${read.events.length} results`);
    recorded += 1;
  }
  await client.close();
  const total = counts.reduce((a, b) => a + b, 0);
  console.log(`processed ${total} files across ${PROCESSES} processes (${counts.join(' + ')}); ${recorded} results recorded`);
  if (total !== FILES) throw new Error(`expected ${FILES} processed, got ${total}`);
}

if (process.argv[3] === '--worker') {
  workerProcess(process.argv[4]).catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
