/**
 * The contract's own ceiling: the JetStream messages the contract asks for per task (4 on the task stream, 5 status
 * and 5 audit events), with the pipeline's stages and publish order, in bare nats.js with no application work —
 * no gRPC, Redis, HTTP, validation or telemetry (hops/flow-stage.mjs, one process per consuming service: ingest,
 * scheduler, worker, result, notifier, audit). This process plays the gateway: it publishes a task with its PENDING
 * status and `submitted` audit event in one write, like SubmitTask, and the task is done when the notifier stage
 * sees SUCCEEDED. Beside the 6-hop chain it shows what the message flow alone allows; beside the pipeline, what
 * everything else costs.
 */
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import type { NatsServer } from "@tm/testkit";
import { connect, type NatsConnection, StorageType } from "nats";
import { within } from "../load.js";
import type { WatchedProcess } from "../proc.js";
import { type SystemUnderTest, taskBody } from "../system.js";
import { benchConsumer, startHopProcesses } from "./raw.js";

/** Stages with the subject each consumes (hops/flow-stage.mjs says what each publishes). */
export const FLOW_STAGES = {
  ingest: "flow.tasks.ingest",
  scheduler: "flow.tasks.scheduled",
  worker: "flow.tasks.worker",
  result: "flow.tasks.results",
  notifier: "flow.events.status",
  audit: "flow.events.audit",
} as const;
/** Stream messages per task, as the pipeline sends for an echo task (test/pipeline.int.test.ts checks that they
 *  agree): the task's three hops and its result, five status events (PENDING to SUCCEEDED), five audit events. */
export const FLOW_MESSAGES_PER_TASK = { tasks: 4, status: 5, audit: 5 } as const;

const STAGE_SCRIPT = fileURLToPath(new URL("../../hops/flow-stage.mjs", import.meta.url));
const STREAMS = [
  { name: "FLOW_TASKS", subjects: ["flow.tasks.>"] },
  { name: "FLOW_EVENTS", subjects: ["flow.events.>"] },
];

export async function startRawFlow(nats: NatsServer, options: { taskTimeoutMs: number }): Promise<SystemUnderTest> {
  const nc: NatsConnection = await connect({ servers: nats.url, noAsyncTraces: true, name: "bench-driver" });
  const jsm = await nc.jetstreamManager();
  for (const stream of STREAMS)
    await jsm.streams.add({
      ...stream,
      storage: StorageType.File,
      max_age: 24 * 3600 * 1e9,
      duplicate_window: 120 * 1e9,
    });
  for (const [stage, subject] of Object.entries(FLOW_STAGES))
    await jsm.consumers.add(
      subject.startsWith("flow.tasks.") ? "FLOW_TASKS" : "FLOW_EVENTS",
      benchConsumer(`flow-${stage}`, subject),
    );

  const waiting = new Map<string, () => void>();
  const done = nc.subscribe("flow.done", {
    callback: (_error, message) => {
      const taskId = message.string();
      waiting.get(taskId)?.();
      waiting.delete(taskId);
    },
  });
  await nc.flush();

  const stages = await startHopProcesses(
    STAGE_SCRIPT,
    Object.keys(FLOW_STAGES).map((stage) => ({
      name: `flow-${stage}`,
      env: { NATS_URL: nats.url, FLOW_STAGE: stage },
    })),
  ).catch(async (error) => {
    await nc.close();
    throw error;
  });

  const js = nc.jetstream();
  return {
    name: "raw-flow",
    async runOne() {
      const taskId = randomUUID();
      const finished = new Promise<void>((resolve) => waiting.set(taskId, resolve));
      const at = new Date().toISOString();
      const pending = {
        taskId,
        state: "PENDING",
        progress: 0,
        attempt: 0,
        version: 1,
        updatedAt: at,
        source: "gateway",
      };
      const submitted = { taskId, service: "gateway", action: "submitted", at };
      // One write, PubAcks awaited together, as the gateway's SubmitTask.
      await Promise.all([
        js.publish(FLOW_STAGES.ingest, JSON.stringify(taskBody(taskId)), { msgID: `${taskId}:submitted` }),
        js.publish("flow.events.status", JSON.stringify(pending), { msgID: `${taskId}:status:1` }),
        js.publish("flow.events.audit", JSON.stringify(submitted), { msgID: `${taskId}:audit:gateway:submitted:0` }),
      ]);
      await within(finished, options.taskTimeoutMs, `raw-flow task ${taskId}`).finally(() => waiting.delete(taskId));
    },
    processes(): WatchedProcess[] {
      return [
        ...Object.keys(FLOW_STAGES).map((stage, i) => ({
          role: `flow-${stage}`,
          kind: "system" as const,
          pid: stages[i]?.pid ?? 0,
        })),
        { role: "nats-server", kind: "infra", pid: nats.process.pid ?? 0 },
      ];
    },
    async stop() {
      done.unsubscribe();
      await Promise.all(stages.map((s) => s.stop(5_000)));
      await nc.drain();
    },
  };
}
