// The BullMQ side of the comparison, run as its own process: a no-op processor with concurrency 50.
// Jobs are added with removeOnComplete { count: 1000 } so Redis does not grow with the run.
import { Worker } from "bullmq";

const url = new URL(process.env.REDIS_URL);
const worker = new Worker(process.env.BENCH_QUEUE ?? "bench", async () => undefined, {
  connection: { host: url.hostname, port: Number(url.port), maxRetriesPerRequest: null },
  concurrency: 50,
});
await worker.waitUntilReady();

process.once("SIGTERM", async () => {
  await worker.close();
  process.exit(0);
});
console.log("bullmq worker ready");
