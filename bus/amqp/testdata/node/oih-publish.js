'use strict';
// Publishes --count events through OIH's EventBus (@openintegrationhub/event-bus),
// cycling over --names, each with payload {seq, run, ...--payload}. With
// --rate, paces to that many per second; --headers adds headers to each
// event's envelope. Publish errors (OIH throws while disconnected) are
// counted, not fatal. Ends with one summary line.
//
//   node oih-publish.js --url amqp://… --service S --names a,b --count 1000 [--rate 2000] [--run X] [--payload '{"k":1}'] [--headers '{"traceparent":"00-…"}']
const { args, emit, quietLogger, sleep } = require('./common');
const { EventBus, Event } = require('@openintegrationhub/event-bus');

async function main() {
  const a = args({ count: '1000', rate: '0', run: 'run', payload: '{}', headers: '{}' });
  const names = String(a.names).split(',');
  const count = Number(a.count);
  const rate = Number(a.rate);
  const extra = JSON.parse(a.payload);
  const headers = JSON.parse(a.headers);
  const bus = new EventBus({ serviceName: a.service, rabbitmqUri: a.url, logger: quietLogger(a.service) });
  await bus.connect();
  emit({ type: 'ready' });
  let failed = 0;
  let firstError = '';
  const start = Date.now();
  for (let i = 0; i < count; i++) {
    if (rate > 0) {
      const due = start + (i * 1000) / rate;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
    }
    const ev = new Event({ headers: Object.assign({}, headers, { name: names[i % names.length] }), payload: Object.assign({}, extra, { seq: i, run: a.run }) });
    try {
      await bus.publish(ev);
    } catch (err) {
      failed++;
      if (!firstError) firstError = String(err && err.message);
    }
    // Let amqplib flush and the event loop breathe, as a service would.
    if (rate === 0 && i % 500 === 499) await sleep(0);
  }
  const seconds = (Date.now() - start) / 1000;
  // Give amqplib's socket buffer time to drain before closing.
  await sleep(200);
  try {
    await bus.disconnect();
  } catch (err) {
    // A connection lost at the end is part of what is measured.
  }
  emit({ type: 'summary', published: count - failed, failed, firstError, seconds });
  process.exit(0);
}

main().catch((err) => {
  emit({ type: 'error', error: String(err && err.stack) });
  process.exit(1);
});
