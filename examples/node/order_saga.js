'use strict';
// The order saga with Node handlers: reserve stock, charge the card, ship. One order completes;
// one whose card is declined is compensated (the reservation released), in reverse order.
// Checks its own outcome; exit 1 if wrong.
//
//   node examples/node/order_saga.js 127.0.0.1:9090
const path = require('node:path');
const syros = require(process.env.SYROS_NODE_PACKAGE || path.join(__dirname, '..', '..', 'sdks', 'node'));

const address = process.argv[2] || '127.0.0.1:9090';

async function main() {
  const client = await syros.Client.connect({ addresses: [address] });
  const service = `orders-${process.pid}`;
  const stock = new Map([['widget', 10]]);
  const log = [];
  const worker = client
    .worker(service, { maxConcurrent: 16 })
    .action('reserve', ({ input }) => {
      stock.set(input.item, stock.get(input.item) - input.qty);
      log.push(`reserve ${input.order}`);
      return { reserved: input.qty };
    })
    .compensation('release', ({ input }) => {
      stock.set(input.item, stock.get(input.item) + input.qty);
      log.push(`release ${input.order}`);
      return {};
    })
    .action('charge', ({ input }) => {
      log.push(`charge ${input.order}`);
      if (input.card === 'declined') {
        throw new syros.TaskFailure('card declined', { type: 'card_declined', nonRetryable: true });
      }
      return { charged: input.qty * 5 };
    })
    .action('ship', ({ input }) => {
      log.push(`ship ${input.order}`);
      return { tracking: `T-${input.order}` };
    });
  const running = worker.run();
  const steps = [
    { name: 'reserve', service, action: 'reserve', compensation: 'release' },
    { name: 'charge', service, action: 'charge' },
    { name: 'ship', service, action: 'ship' },
  ];
  const good = await client.sagas.start({ name: 'order', steps, input: { order: 1, item: 'widget', qty: 2, card: 'ok' } });
  const bad = await client.sagas.start({ name: 'order', steps, input: { order: 2, item: 'widget', qty: 3, card: 'declined' } });
  const [goodDone, badDone] = await Promise.all([
    client.sagas.wait(good.sagaId, { timeout: 30_000 }),
    client.sagas.wait(bad.sagaId, { timeout: 30_000 }),
  ]);
  worker.stop();
  await running;
  await client.close();
  console.log(`order 1: ${goodDone.state}, tracking ${goodDone.steps[2].output.tracking}`);
  console.log(`order 2: ${badDone.state}; handlers ran: ${log.join(', ')}; widgets left ${stock.get('widget')}`);
  if (goodDone.state !== 'completed') throw new Error(`order 1 ended ${goodDone.state}`);
  if (badDone.state !== 'compensated') throw new Error(`order 2 ended ${badDone.state}`);
  if (stock.get('widget') !== 8) throw new Error(`expected 8 widgets left, got ${stock.get('widget')}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
