// One hop of the raw JetStream chain, run as its own process: a durable pull consumer on bench.chain.<HOP-1>
// (explicit ack) that republishes each message to bench.chain.<HOP> with a message id, then acks it.
// The connection uses noAsyncTraces, as the pipeline's does (pkg/kit/src/nats.ts), so the comparison is fair.
import { connect } from "nats";

const hop = Number(process.env.HOP);
const stream = process.env.BENCH_STREAM ?? "BENCH";
const nc = await connect({ servers: process.env.NATS_URL, noAsyncTraces: true, name: `raw-hop-${hop}` });
const js = nc.jetstream();
const consumer = await js.consumers.get(stream, `hop-${hop}`);
const messages = await consumer.consume({ max_messages: 256 });
const out = `bench.chain.${hop}`;

process.once("SIGTERM", async () => {
  await messages.close();
  await nc.drain();
  process.exit(0);
});
console.log(`raw hop ${hop} ready`);

for await (const message of messages) {
  // Each message is handled concurrently; the consumer's max_ack_pending bounds how many are in flight.
  const { taskId } = message.json();
  js.publish(out, message.data, { msgID: `${taskId}:${hop}` }).then(
    () => message.ack(),
    () => message.nak(),
  );
}
