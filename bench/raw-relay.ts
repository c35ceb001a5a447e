import amqp from 'amqplib';

/*
 * The baseline: the least a safe relay can do with amqplib. Consume with
 * manual ack, publish persistent with a confirm, ack only after the confirm.
 * Usage: node raw-relay.js URL FROM TO PREFETCH
 */

const [url, from, to, prefetch] = process.argv.slice(2) as [string, string, string, string];
const conn = await amqp.connect(url);
const ch = await conn.createConfirmChannel();
await ch.assertQueue(from, { durable: true });
await ch.assertQueue(to, { durable: true });
await ch.prefetch(Number(prefetch));
await ch.consume(from, (m) => {
  if (!m) return;
  const event = JSON.parse(m.content.toString());
  ch.publish('', to, Buffer.from(JSON.stringify(event)), { persistent: true }, (err) => {
    if (!err) ch.ack(m);
  });
});
process.stdout.write('consuming\n');
process.on('SIGTERM', () => {
  void ch.close().finally(() => conn.close().finally(() => process.exit(0)));
});
