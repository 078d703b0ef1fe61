// The baseline of `pnpm bench --drain`: a durable pull consumer that receives each message, parses its JSON body
// and acks it, nothing else. With BENCH_REPUBLISH=scheduler (the scheduler's baseline) it first publishes what the
// scheduler publishes for a task (the task on tasks.worker.medium, a status and an audit event, in one write, PubAcks
// awaited together); with BENCH_REPUBLISH=result-store, the result-store's audit event; with BENCH_REPUBLISH=worker,
// what the worker publishes for an echo task, in its two awaited rounds (RUNNING and the result, sent one after the
// other and awaited together; SUCCEEDED with its audit event). So what a service spends per
// message beyond this is its own work. With BENCH_FETCH=N (`--bare-fetch N`) it pulls N messages at a time with
// fetch(), a pull request and a subscription each, as the services' consume loop does when N slots are free.
import { connect } from "nats";

const nc = await connect({ servers: process.env.NATS_URL, noAsyncTraces: true, name: "bare-consumer" });
const js = nc.jetstream();
const consumer = await js.consumers.get(process.env.BENCH_STREAM, process.env.BENCH_CONSUMER);
const fetchSize = Number(process.env.BENCH_FETCH ?? 0);
let pulling = true;
let current;
/** One consume() subscription, or back-to-back fetch() pulls of fetchSize messages. */
async function* deliveries() {
  if (!fetchSize) {
    current = await consumer.consume({ max_messages: 256 });
    yield* current;
    return;
  }
  while (pulling) {
    current = await consumer.fetch({ max_messages: fetchSize, expires: 5_000 });
    yield* current;
  }
}
const messages = deliveries();
const republish = process.env.BENCH_REPUBLISH;

process.once("SIGTERM", async () => {
  pulling = false;
  await current?.close();
  await nc.drain();
  process.exit(0);
});
console.log("bare consumer ready");

async function runLikeWorker(taskId) {
  const status = (state, version) => ({
    taskId,
    state,
    progress: 0,
    attempt: 1,
    version,
    updatedAt: new Date().toISOString(),
    source: "bare",
  });
  const running = js.publish("events.status", JSON.stringify(status("RUNNING", 4)), { msgID: `${taskId}:status:4` });
  const at = new Date().toISOString();
  const result = {
    taskId,
    type: "echo",
    priority: "medium",
    output: { text: "benchmark payload" },
    attempts: 1,
    startedAt: at,
    completedAt: at,
    durationMs: 0,
    generation: 0,
  };
  await Promise.all([running, js.publish("tasks.results", JSON.stringify(result), { msgID: `${taskId}:result:0` })]);
  const audit = { taskId, service: "bare", action: "succeeded", at, detail: { attempts: 1, durationMs: 0 } };
  await Promise.all([
    js.publish("events.status", JSON.stringify(status("SUCCEEDED", 5)), { msgID: `${taskId}:status:5` }),
    js.publish("events.audit", JSON.stringify(audit), { msgID: `${taskId}:audit:bare:succeeded:0` }),
  ]);
}

function handOn(message, taskId) {
  if (republish === "worker") return runLikeWorker(taskId);
  if (republish === "result-store") {
    const audit = { taskId, service: "bare", action: "result_stored", at: new Date().toISOString(), detail: {} };
    return js.publish("events.audit", JSON.stringify(audit), { msgID: `${taskId}:audit:bare:result_stored:0` });
  }
  const at = new Date().toISOString();
  const status = { taskId, state: "SCHEDULED", progress: 0, attempt: 0, version: 3, updatedAt: at, source: "bare" };
  const audit = { taskId, service: "bare", action: "scheduled", at, detail: { subject: "tasks.worker.medium" } };
  return Promise.all([
    js.publish("events.status", JSON.stringify(status), { msgID: `${taskId}:status:3` }),
    js.publish("tasks.worker.medium", message.data, { msgID: `${taskId}:worker:0` }),
    js.publish("events.audit", JSON.stringify(audit), { msgID: `${taskId}:audit:bare:scheduled:0` }),
  ]);
}

for await (const message of messages) {
  const body = message.json();
  if (!republish) {
    message.ack();
    continue;
  }
  // Concurrently, as the services handle a batch; the consumer's max_ack_pending bounds how many are in flight.
  handOn(message, body.taskId).then(
    () => message.ack(),
    () => message.nak(),
  );
}
