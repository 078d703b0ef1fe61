// One stage of the raw contract flow (bench/src/systems/raw-flow.ts), run as its own process: the JetStream
// messages the contract asks of each service, published with bare nats.js and no application work (no validation,
// no Redis, no HTTP, no gRPC, no telemetry). Durable pull consumer, explicit ack, a message id on every publish,
// noAsyncTraces, as in raw-hop.mjs and the pipeline. FLOW_STAGE says which stage this process is.
//
//   stage      consumes             publishes (one write unless stated)
//   ingest     flow.tasks.ingest    flow.tasks.scheduled, status INGESTED, audit ingested
//   scheduler  flow.tasks.scheduled flow.tasks.worker, status SCHEDULED, audit scheduled
//   worker     flow.tasks.worker    status RUNNING, then flow.tasks.results, then status SUCCEEDED + audit succeeded
//                                   (two rounds, as the pipeline's worker: RUNNING and the result sent one after
//                                   the other and their PubAcks awaited together, then SUCCEEDED with its audit)
//   result     flow.tasks.results   audit result_stored
//   notifier   flow.events.status   nothing; on SUCCEEDED a core NATS message on flow.done (the driver's signal)
//   audit      flow.events.audit    nothing
import { connect } from "nats";

const stage = process.env.FLOW_STAGE;
const STAGES = {
  ingest: { stream: "FLOW_TASKS", next: "flow.tasks.scheduled", state: "INGESTED" },
  scheduler: { stream: "FLOW_TASKS", next: "flow.tasks.worker", state: "SCHEDULED" },
  worker: { stream: "FLOW_TASKS" },
  result: { stream: "FLOW_TASKS" },
  notifier: { stream: "FLOW_EVENTS" },
  audit: { stream: "FLOW_EVENTS" },
};
const config = STAGES[stage];
if (!config) throw new Error(`FLOW_STAGE must be one of ${Object.keys(STAGES).join(", ")}; got ${stage}`);

const nc = await connect({ servers: process.env.NATS_URL, noAsyncTraces: true, name: `flow-${stage}` });
const js = nc.jetstream();
const consumer = await js.consumers.get(config.stream, `flow-${stage}`);
const messages = await consumer.consume({ max_messages: 256 });

// Shaped like the pipeline's events (pkg/flow/src/events.ts), so the bytes per message are comparable.
const status = (taskId, state, version) =>
  js.publish(
    "flow.events.status",
    JSON.stringify({
      taskId,
      state,
      progress: state === "SUCCEEDED" ? 100 : 0,
      attempt: 1,
      version,
      updatedAt: new Date().toISOString(),
      source: stage,
      generation: 0,
    }),
    { msgID: `${taskId}:status:${version}` },
  );
const audit = (taskId, action) =>
  js.publish("flow.events.audit", JSON.stringify({ taskId, service: stage, action, at: new Date().toISOString() }), {
    msgID: `${taskId}:audit:${stage}:${action}:0`,
  });

async function handle(message) {
  if (stage === "audit") return;
  const body = message.json();
  const { taskId } = body;
  switch (stage) {
    case "ingest":
    case "scheduler":
      await Promise.all([
        js.publish(config.next, message.data, { msgID: `${taskId}:${stage}` }),
        status(taskId, config.state, stage === "ingest" ? 2 : 3),
        audit(taskId, stage === "ingest" ? "ingested" : "scheduled"),
      ]);
      return;
    case "worker": {
      const running = status(taskId, "RUNNING", 4);
      const result = JSON.stringify({ taskId, generation: 0, result: { echo: body.payload } });
      await Promise.all([running, js.publish("flow.tasks.results", result, { msgID: `${taskId}:result:0` })]);
      await Promise.all([status(taskId, "SUCCEEDED", 5), audit(taskId, "succeeded")]);
      return;
    }
    case "result":
      await audit(taskId, "result_stored");
      return;
    case "notifier":
      if (body.state === "SUCCEEDED") nc.publish("flow.done", taskId);
      return;
  }
}

process.once("SIGTERM", async () => {
  await messages.close();
  await nc.drain();
  process.exit(0);
});
console.log(`flow ${stage} ready`);

for await (const message of messages) {
  // Each message is handled concurrently; the consumer's max_ack_pending bounds how many are in flight.
  handle(message).then(
    () => message.ack(),
    () => message.nak(),
  );
}
