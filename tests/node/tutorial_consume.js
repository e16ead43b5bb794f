// tutorial_consume.js - the tutorial's consumer (3.2) as a benchmark peer:
// Node amqplib, one channel with prefetch P (100: the peer),
// JSON.parse of each body, one ack per message. tests/bench/prefetch.sh
// runs it beside warrend and the bare rabbitmq-c consumers:
//   node tutorial_consume.js AMQP_URL QUEUE COUNT [PREFETCH]
// The clock starts at the first delivery and stops at the COUNT-th ack;
// prints one line, "tutorial: N messages in S s (R msg/s)", and exits 0;
// exits 1 on an error or if COUNT messages do not come within 300 s.
'use strict';
const amqp = require('amqplib');

async function main() {
  const [url, queue, countArg, prefetchArg] = process.argv.slice(2);
  const count = Number(countArg);
  const prefetch = Number(prefetchArg || 100);
  if (!url || !queue || !(count > 0) || !(prefetch > 0)) {
    console.error('usage: node tutorial_consume.js AMQP_URL QUEUE COUNT [PREFETCH]');
    process.exit(2);
  }
  const conn = await amqp.connect(url);
  const ch = await conn.createChannel();
  await ch.prefetch(prefetch);
  let n = 0;
  let t0 = 0;
  const timer = setTimeout(() => {
    console.error(`tutorial: only ${n} of ${count} messages within 300 s`);
    process.exit(1);
  }, 300000);
  await new Promise((resolve, reject) => {
    ch.consume(queue, (msg) => {
      if (msg === null) return reject(new Error('consumer cancelled'));
      if (n === 0) t0 = process.hrtime.bigint();
      // The tutorial's handler: parse, look at the type, ack.
      const body = JSON.parse(msg.content.toString());
      if (typeof body.type !== 'string') return reject(new Error('no type'));
      ch.ack(msg);
      if (++n === count) resolve();
    }, {noAck: false}).catch(reject);
  });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  clearTimeout(timer);
  console.log(`tutorial: ${n} messages in ${s.toFixed(6)} s (${(n / s).toFixed(0)} msg/s)`);
  await ch.close();
  await conn.close();
}

main().catch((err) => {
  console.error(`tutorial: ${err.message}`);
  process.exit(1);
});
