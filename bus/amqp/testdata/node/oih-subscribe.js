'use strict';
// Subscribes through OIH's EventBus as --service to each of --names and
// prints every event it receives (name, serviceName, id, createdAt,
// payload, the envelope's traceparent header), acking each. Runs until
// --expect events arrived, or until its stdin closes (--expect 0), or
// --timeout ms pass.
//
//   node oih-subscribe.js --url amqp://… --service S --names a,b [--expect 1000] [--timeout 60000] [--quiet]
const { args, emit, quietLogger, untilStdinCloses } = require('./common');
const { EventBus } = require('@openintegrationhub/event-bus');

async function main() {
  const a = args({ expect: '0', timeout: '120000' });
  const names = String(a.names).split(',');
  const expect = Number(a.expect);
  const bus = new EventBus({ serviceName: a.service, rabbitmqUri: a.url, logger: quietLogger(a.service) });
  let received = 0;
  let done;
  const finished = new Promise((r) => { done = r; });
  for (const name of names) {
    bus.subscribe(name, async (ev) => {
      received++;
      if (!a.quiet) {
        emit({ type: 'event', name: ev.name, serviceName: ev.serviceName, id: ev.getHeader('id'), createdAt: ev.createdAt, payload: ev.payload, traceparent: ev.getHeader('traceparent') });
      }
      await ev.ack();
      if (expect > 0 && received >= expect) done();
    });
  }
  await bus.connect();
  emit({ type: 'ready' });
  const timer = setTimeout(done, Number(a.timeout));
  if (expect === 0) untilStdinCloses().then(done);
  await finished;
  clearTimeout(timer);
  emit({ type: 'summary', received });
  try {
    await bus.disconnect();
  } catch (err) {
    // ignore
  }
  process.exit(0);
}

main().catch((err) => {
  emit({ type: 'error', error: String(err && err.stack) });
  process.exit(1);
});
