/**
 * tm_consumer_backlog_limit_ratio against a real nats-server: a TASKS stream with the contract's "discard old" policy
 * but room for only 100 messages, a consumer that handles nothing, and messages of its own and of another subject
 * published until the stream discards the head of its backlog. The gauge reads 1 exactly when that starts.
 */
import { MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import { STREAMS, Subjects, streamConfig } from "@tm/flow";
import { useInfra, waitFor } from "@tm/testkit";
import { AckPolicy, connect, type JetStreamManager, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { ConsumerMetrics } from "../src/stage-metrics.js";

class TestReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

const infra = useInfra();
let nc: NatsConnection;
let jsm: JetStreamManager;
beforeAll(async () => {
  nc = await connect({ servers: infra.nats.url });
  jsm = await nc.jetstreamManager();
});
afterAll(async () => {
  await nc?.drain();
});

test("the ratio follows the backlog's share of the stream's room and passes 1 when its head is discarded", async () => {
  await jsm.streams.add({ ...streamConfig(STREAMS.tasks), max_msgs: 100 });
  await jsm.consumers.add(STREAMS.tasks, {
    durable_name: "probe",
    filter_subject: Subjects.workerLow,
    ack_policy: AckPolicy.Explicit,
  });
  const reader = new TestReader();
  const metrics = new ConsumerMetrics(new MeterProvider({ readers: [reader] }).getMeter("test"), { pollMs: 50 });
  metrics.watch(jsm, Subjects.workerLow, "probe");
  const ratio = async (): Promise<number | undefined> => {
    const { resourceMetrics } = await reader.collect();
    const metric = resourceMetrics.scopeMetrics
      .flatMap((scope) => scope.metrics)
      .find((m) => m.descriptor.name === "tm_consumer_backlog_limit_ratio");
    return metric?.dataPoints.find((point) => point.attributes.consumer === "probe")?.value as number | undefined;
  };
  const js = nc.jetstream();
  const publish = async (subject: string, count: number) => {
    for (let i = 0; i < count; i++) await js.publish(subject, new TextEncoder().encode(`{"n":${i}}`));
  };

  try {
    await publish(Subjects.workerLow, 60);
    await waitFor("60 of 100 messages", async () => (await ratio()) === 0.6);
    // Another subject's messages share the stream's room: they push the backlog towards the limit too.
    await publish(Subjects.results, 40);
    await waitFor("the backlog at the limit", async () => (await ratio()) === 1);
    expect((await jsm.consumers.info(STREAMS.tasks, "probe")).num_pending).toBe(60);

    await publish(Subjects.results, 20);
    await waitFor("past the limit", async () => (await ratio()) === 1.2);
    // The 20 oldest of the consumer's messages are gone, never delivered: what the gauge warns of.
    expect((await jsm.consumers.info(STREAMS.tasks, "probe")).num_pending).toBe(40);

    // Handled, the backlog no longer counts.
    const consumer = await js.consumers.get(STREAMS.tasks, "probe");
    const batch = await consumer.fetch({ max_messages: 40, expires: 2_000 });
    for await (const message of batch) message.ack();
    await waitFor("no backlog", async () => (await ratio()) === 0);
  } finally {
    metrics.stop();
  }
});
