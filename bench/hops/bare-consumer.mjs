// The baseline of `pnpm bench --drain`: a durable pull consumer that receives each message, parses its JSON body
// and acks it, nothing else. What a service spends per message beyond this is its own work.
import { connect } from "nats";

const nc = await connect({ servers: process.env.NATS_URL, noAsyncTraces: true, name: "bare-consumer" });
const consumer = await nc.jetstream().consumers.get(process.env.BENCH_STREAM, process.env.BENCH_CONSUMER);
const messages = await consumer.consume({ max_messages: 256 });

process.once("SIGTERM", async () => {
  await messages.close();
  await nc.drain();
  process.exit(0);
});
console.log("bare consumer ready");

for await (const message of messages) {
  message.json();
  message.ack();
}
