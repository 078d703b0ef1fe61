/**
 * The raw ceiling: a 6-hop JetStream chain with one process per hop (hops/raw-hop.mjs), ~300-byte JSON messages,
 * durable pull consumers with explicit ack and publishes with a message id. This process publishes into the first
 * subject and collects from the last.
 */
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { ManagedProcess, type NatsServer, underWrapper } from "@tm/testkit";
import { AckPolicy, type ConsumerMessages, connect, type NatsConnection, StorageType } from "nats";
import { within } from "../load.js";
import type { WatchedProcess } from "../proc.js";
import { type SystemUnderTest, taskBody } from "../system.js";

export const RAW_HOPS = 6;

/** The consumer every bench hop uses: durable, explicit ack, the contract's AckWait and MaxDeliver. */
export function benchConsumer(name: string, subject: string) {
  return {
    durable_name: name,
    filter_subject: subject,
    ack_policy: AckPolicy.Explicit,
    ack_wait: 30 * 1e9,
    max_deliver: 5,
    max_ack_pending: 1000,
  };
}

/** Starts one Node process per hop running `script` and waits until each prints "ready". */
export async function startHopProcesses(
  script: string,
  hops: readonly { name: string; env: Record<string, string> }[],
): Promise<ManagedProcess[]> {
  const started = hops.map(({ name, env }) =>
    new ManagedProcess({ name, ...underWrapper([process.execPath, script]), env: { ...process.env, ...env } }).start(),
  );
  try {
    await Promise.all(started.map((h) => h.waitForLine(/ready/, 60_000)));
  } catch (error) {
    await Promise.all(started.map((h) => h.stop(5_000)));
    throw error;
  }
  return started;
}
const STREAM = "BENCH";
const HOP_SCRIPT = fileURLToPath(new URL("../../hops/raw-hop.mjs", import.meta.url));

export async function startRawChain(nats: NatsServer, options: { taskTimeoutMs: number }): Promise<SystemUnderTest> {
  const nc: NatsConnection = await connect({ servers: nats.url, noAsyncTraces: true, name: "bench-driver" });
  const jsm = await nc.jetstreamManager();
  await jsm.streams.add({
    name: STREAM,
    subjects: ["bench.chain.*"],
    storage: StorageType.File,
    max_age: 24 * 3600 * 1e9,
    duplicate_window: 120 * 1e9,
  });
  for (let hop = 1; hop <= RAW_HOPS; hop++)
    await jsm.consumers.add(STREAM, benchConsumer(`hop-${hop}`, `bench.chain.${hop - 1}`));
  await jsm.consumers.add(STREAM, benchConsumer("collector", `bench.chain.${RAW_HOPS}`));

  const hops = await startHopProcesses(
    HOP_SCRIPT,
    Array.from({ length: RAW_HOPS }, (_, i) => ({
      name: `raw-hop-${i + 1}`,
      env: { NATS_URL: nats.url, HOP: String(i + 1), BENCH_STREAM: STREAM },
    })),
  );

  const js = nc.jetstream();
  const waiting = new Map<string, () => void>();
  const collector = await js.consumers.get(STREAM, "collector");
  const collected: ConsumerMessages = await collector.consume({ max_messages: 256 });
  void (async () => {
    for await (const message of collected) {
      message.ack();
      const { taskId } = message.json<{ taskId: string }>();
      waiting.get(taskId)?.();
      waiting.delete(taskId);
    }
  })();

  return {
    name: "raw",
    async runOne() {
      const taskId = randomUUID();
      const done = new Promise<void>((resolve) => waiting.set(taskId, resolve));
      await js.publish("bench.chain.0", JSON.stringify(taskBody(taskId)), { msgID: `${taskId}:0` });
      await within(done, options.taskTimeoutMs, `raw task ${taskId}`).finally(() => waiting.delete(taskId));
    },
    processes(): WatchedProcess[] {
      return [
        ...hops.map((h, i) => ({ role: `hop-${i + 1}`, kind: "system" as const, pid: h.pid ?? 0 })),
        { role: "nats-server", kind: "infra", pid: nats.process.pid ?? 0 },
      ];
    },
    async stop() {
      await collected.close();
      await Promise.all(hops.map((h) => h.stop(5_000)));
      await nc.drain();
    },
  };
}
