'use strict';
// OIH's library end to end, as a service uses it: one EventBus publishing
// (publish loop, no confirms: what the library offers), another
// subscribing and acking each event. Measures events/s (first publish to
// last receipt) and the publish→handler latency of each event, with
// events padded to --size bytes on the wire.
//
//   node oih-bench.js --url amqp://… --count 20000 [--rate 5000] [--size 280] [--run X]
const { args, emit, quietLogger, sleep, percentile } = require('./common');
const { EventBus, Event } = require('@openintegrationhub/event-bus');
const amqplib = require('amqplib');
const { performance } = require('perf_hooks');

const now = () => performance.timeOrigin + performance.now();

async function main() {
  const a = args({ count: '20000', rate: '0', size: '280', run: String(Date.now()) });
  const count = Number(a.count);
  const rate = Number(a.rate);
  const name = `bench-${a.run}.event`;
  const service = `bench-${a.run}-oih-sub`;
  const user = '5f1c0c6e2a9b4c0012345678';
  const tenant = '5f1c0c6e2a9b4c00aaaaaaaa';

  const lat = new Float64Array(count);
  let received = 0;
  let last = 0;
  let done;
  const finished = new Promise((r) => { done = r; });
  const sub = new EventBus({ serviceName: service, rabbitmqUri: a.url, logger: quietLogger(service) });
  sub.subscribe(name, async (ev) => {
    const t = now();
    const seq = ev.payload.seq;
    if (seq >= 0 && seq < count && lat[seq] === 0) {
      lat[seq] = Math.max(t - ev.payload.t, 0.001);
      received++;
      last = t;
    }
    await ev.ack();
    if (received === count) done();
  });
  await sub.connect();

  // OIH's connect() resolves before its consumer exists.
  const admin = await amqplib.connect(a.url);
  for (;;) {
    const ch = await admin.createChannel();
    try {
      const q = await ch.checkQueue(service);
      await ch.close();
      if (q.consumerCount > 0) break;
    } catch (err) {
      // not declared yet
    }
    await sleep(20);
  }

  const pub = new EventBus({ serviceName: `bench-${a.run}-oih-pub`, rabbitmqUri: a.url, logger: quietLogger('pub') });
  await pub.connect();
  // Pad the payload so the body on the wire is --size bytes.
  const probe = new Event({ headers: { name }, payload: { seq: 10000, t: now(), user, tenant, pad: '' } });
  probe.setServiceName(`bench-${a.run}-oih-pub`);
  const padLen = Math.max(0, Number(a.size) - Buffer.byteLength(JSON.stringify(probe.toJSON())));
  const pad = 'x'.repeat(padLen);

  const start = now();
  for (let i = 0; i < count; i++) {
    if (rate > 0) {
      const wait = start + (i * 1000) / rate - now();
      if (wait > 0) await sleep(wait);
    } else if (i % 1000 === 999) {
      await sleep(0); // let the subscriber's deliveries in, as a service's event loop would
    }
    await pub.publish(new Event({ headers: { name }, payload: { seq: i, t: now(), user, tenant, pad } }));
  }
  const published = now();
  const timer = setTimeout(done, 300000);
  await finished;
  clearTimeout(timer);
  const sorted = Array.from(lat).filter((x) => x > 0).sort((x, y) => x - y);
  emit({
    type: 'summary',
    received,
    rate: received / ((last - start) / 1000),
    publishRate: count / ((published - start) / 1000),
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
  });
  const ch = await admin.createChannel();
  await ch.deleteQueue(service);
  await admin.close();
  try {
    await pub.disconnect();
    await sub.disconnect();
  } catch (err) {
    // ignore
  }
  process.exit(0);
}

main().catch((err) => {
  emit({ type: 'error', error: String(err && err.stack) });
  process.exit(1);
});
