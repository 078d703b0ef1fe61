/**
 * WORKER_MAX_ABANDONED_HANDLERS with the built worker as its own process, against a real nats-server and redis-server:
 * a handler that ignores its signal is abandoned when its attempt times out; at the limit the worker stops gracefully
 * and exits 75 (EX_TEMPFAIL) for its supervisor to start a fresh process, which is what frees such handlers.
 */
import { createPublisher, type EnrichedTaskMessage, workerSubject } from "@tm/flow";
import { spawnService, useClients, useInfra } from "@tm/testkit";
import { expect, test } from "vitest";

const infra = useInfra();
const clients = useClients(infra);

function stubbornSleep(): EnrichedTaskMessage {
  const now = new Date().toISOString();
  return {
    taskId: crypto.randomUUID(),
    type: "sleep",
    priority: "medium",
    payload: { ms: 120_000, ignoreSignal: true },
    metadata: {},
    createdAt: now,
    generation: 0,
    enrichment: { payloadBytes: 2, payloadSha256: "0".repeat(64), fieldCount: 0, receivedAt: now, enrichedAt: now },
  };
}

test("at WORKER_MAX_ABANDONED_HANDLERS handlers that ignore their signal, the worker stops and exits 75", async () => {
  const worker = await spawnService("worker", {
    NATS_URL: infra.nats.url,
    REDIS_URL: infra.redis.url,
    TASK_TIMEOUT_MS: "200",
    WORKER_MAX_ABANDONED_HANDLERS: "2",
    SHUTDOWN_TIMEOUT_MS: "2000",
  });
  const publisher = createPublisher(clients.nc);
  const publish = async (task: EnrichedTaskMessage) =>
    publisher.publish(workerSubject("medium"), task, { msgId: `${task.taskId}:worker:0` });
  try {
    await publish(stubbornSleep());
    await worker.process.waitForLine(/a handler ignored its abort signal/, 15_000);
    // One abandoned, below the limit: the worker goes on.
    expect(worker.process.output.some((line) => line.includes("needs replacing"))).toBe(false);
    expect(worker.process.running).toBe(true);

    await publish(stubbornSleep());
    expect(await worker.process.exited()).toBe(75);
    const output = worker.process.output.join("\n");
    expect(output).toMatch(/this process needs replacing: stopping, to be started afresh/);
    expect(output).toMatch(/2 handlers ignored their abort signal and still run \(WORKER_MAX_ABANDONED_HANDLERS\)/);
  } finally {
    await worker.process.stop();
  }
});
