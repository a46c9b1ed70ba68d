'use strict';
// A plain amqplib consumer: an exclusive server-named queue bound to each of
// --names on the event-bus exchange. Prints every raw body (as a string)
// with its AMQP properties, or with --count-only just counts, and with
// --latency measures now - headers.createdAt. Runs until --expect bodies
// arrived, stdin closes (--expect 0), or --timeout ms pass.
//
//   node raw-consume.js --url amqp://… --names a,b [--expect N] [--timeout ms] [--count-only] [--latency] [--run X]
const { args, emit, untilStdinCloses, percentile } = require('./common');
const amqplib = require('amqplib');

async function main() {
  const a = args({ expect: '0', timeout: '120000' });
  const names = String(a.names).split(',');
  const expect = Number(a.expect);
  const conn = await amqplib.connect(a.url);
  const ch = await conn.createChannel();
  await ch.assertExchange('event-bus', 'topic');
  const q = await ch.assertQueue('', { exclusive: true, autoDelete: true });
  for (const name of names) await ch.bindQueue(q.queue, 'event-bus', name);
  let received = 0;
  const seen = new Set();
  const lat = [];
  let done;
  const finished = new Promise((r) => { done = r; });
  await ch.consume(q.queue, (msg) => {
    if (!msg) return;
    received++;
    const body = msg.content.toString();
    if (a['count-only'] || a.latency) {
      try {
        const ev = JSON.parse(body);
        if (!a.run || (ev.payload && ev.payload.run === a.run)) {
          const key = ev.headers.id || String(ev.payload.seq);
          seen.add(key);
          if (a.latency) lat.push(Date.now() - Number(ev.headers.createdAt));
        }
      } catch (err) {
        // counted as received, not as seen
      }
    } else {
      emit({ type: 'raw', body, properties: msg.properties });
    }
    ch.ack(msg);
    if (expect > 0 && (a.run ? seen.size : received) >= expect) done();
  }, { noAck: false });
  emit({ type: 'ready', queue: q.queue });
  const timer = setTimeout(done, Number(a.timeout));
  if (expect === 0) untilStdinCloses().then(done);
  await finished;
  clearTimeout(timer);
  lat.sort((x, y) => x - y);
  emit({ type: 'summary', received, distinct: seen.size, p50: percentile(lat, 50), p99: percentile(lat, 99) });
  try {
    await conn.close();
  } catch (err) {
    // ignore
  }
  process.exit(0);
}

main().catch((err) => {
  emit({ type: 'error', error: String(err && err.stack) });
  process.exit(1);
});
