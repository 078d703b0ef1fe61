/**
 * Fault: a rolling restart. While tasks flow, worker, ingest, scheduler, notifier, result-store, audit and
 * deadletter are each sent SIGTERM in turn (and started again): each exits 0 after draining, and every task reaches
 * SUCCEEDED with exactly one result and one `result_stored` audit entry.
 *
 * The gateway and the enricher have their own tests here, since their callers see the restart:
 * - two gateways take submissions round robin; each is sent SIGTERM and restarted on its port in turn, while
 *   submissions go on until after the second is back. A client whose SubmitTask fails (UNAVAILABLE, a refused
 *   connection or HTTP/2 stream) retries it on the other gateway with the same idempotency key, as Envoy's retry
 *   policy does. Streams open on the stopping gateway end with UNAVAILABLE at once and are re-opened on a gateway;
 *   the tasks created are exactly the accepted ones (one per key), each SUCCEEDED with one result.
 * - the enricher is sent SIGTERM while ingest calls it and restarted on its port. The test pipeline's retry delays
 *   add up to 0.7 s, less than a process restart, so this test's ingest is respawned with delays covering it
 *   (1 + 2 + 4 + 8 s): calls that fail meanwhile are retried, none is dead-lettered.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { Subjects } from "@tm/flow";
import { createTaskClient, type StreamTaskStatusResponse, type TaskClient, TaskState } from "@tm/proto";
import { Keys, readDeadLetters } from "@tm/store";
import type { SpawnedService } from "@tm/testkit";
import type { NatsConnection } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { collectStream, FAST_FLOW, type Pipeline, startPipeline, stateNames } from "../support/pipeline.js";
import {
  connectTo,
  countByTask,
  resultAccounting,
  steadyLoad,
  submitUntilAccepted,
  waitAllTerminal,
  waitDrained,
} from "../support/reliability.js";

const ROLLED = ["worker", "ingest", "scheduler", "notifier", "result-store", "audit", "deadletter"] as const;
const TASKS = 120;
let pipeline: Pipeline;
let nc: NatsConnection;

beforeAll(async () => {
  pipeline = await startPipeline();
  nc = await connectTo(pipeline.nats.url);
}, 90_000);
afterAll(async () => {
  await nc?.close();
  await pipeline?.dispose();
});

test("SIGTERM to each stage in turn under load: exit code 0, no task lost, no result duplicated", async () => {
  const exitCodes: Record<string, number | null> = {};
  let rolling: Promise<number> | undefined;
  const startedAt = Date.now();
  // ~10 s of submissions, so tasks keep arriving while the stages restart one after another.
  const load = steadyLoad(pipeline.client, TASKS, 80, (i) => {
    if (i !== 5) return;
    rolling = (async () => {
      for (const name of ROLLED) {
        const service = pipeline.services.get(name)!;
        await service.process.stop();
        exitCodes[name] = await service.process.exited();
        await pipeline.spawn(name);
      }
      return Date.now();
    })();
  });
  const taskIds = await load.accepted;
  const loadEndedAt = Date.now();
  const rolledAt = await rolling;
  console.log(
    `[reliability] rolling SIGTERM restart of ${ROLLED.length} stages done after ${(rolledAt ?? 0) - startedAt} ms; ` +
      `load ran ${loadEndedAt - startedAt} ms; ${taskIds.length} tasks`,
  );
  expect(exitCodes).toEqual(Object.fromEntries(ROLLED.map((name) => [name, 0])));

  expect(await waitAllTerminal(pipeline.redisClient, taskIds, 40_000)).toEqual([]);
  await waitDrained(nc, "result-store", Subjects.results);
  await waitDrained(nc, "audit", Subjects.audit);
  const accounting = await resultAccounting(nc, pipeline.redisClient, taskIds);
  expect(accounting.filter((a) => a.resultMessages !== 1 || !a.resultKey || a.resultStored !== 1)).toEqual([]);
}, 120_000);

/** SIGTERM, wait for the exit, start the same command again (same ports) and wait until it is ready; the exit
 *  code, and the times from SIGTERM to the exit and to ready again. */
async function stopAndRestart(
  service: SpawnedService,
): Promise<{ code: number | null; exitMs: number; downMs: number }> {
  const stoppedAt = Date.now();
  await service.process.stop();
  const code = await service.process.exited();
  const exitMs = Date.now() - stoppedAt;
  service.process.start();
  await service.ready();
  return { code, exitMs, downMs: Date.now() - stoppedAt };
}

/** A status stream that has delivered its first update (the current status), so it is open on the server. */
async function openStream(client: TaskClient, taskId: string) {
  const stream = client.streamTaskStatus({ taskId }, { signal: AbortSignal.timeout(30_000) })[Symbol.asyncIterator]();
  const first = await stream.next();
  if (first.done) throw new Error(`stream of ${taskId} ended before its first update`);
  return stream;
}

/** Reads a stream to its end: "completed", or the code it failed with, and when. */
async function streamEnd(stream: AsyncIterator<StreamTaskStatusResponse>): Promise<{ end: string; at: number }> {
  try {
    while (!(await stream.next()).done);
    return { end: "completed", at: Date.now() };
  } catch (error) {
    return { end: Code[ConnectError.from(error).code] ?? "?", at: Date.now() };
  }
}

const AFTER_ROLLING = 15;
const MAX_GATEWAY_TASKS = 1_000;
const WATCHED_PER_GATEWAY = 3;

test("SIGTERM to each of two gateways in turn under load: exit 0, open streams end, every submission one task, one result", async () => {
  const gateways = [pipeline.services.get("gateway")!, await pipeline.spawn("gateway", {}, "gateway-2")];
  const clients = gateways.map((g) => createTaskClient({ baseUrl: `http://127.0.0.1:${g.port}` }));
  const tasksBefore = new Set(await pipeline.redisClient.zrange(Keys.taskIndex, 0, -1));
  const stops: Array<{ code: number | null; exitMs: number; downMs: number }> = [];
  const streamEnds: Array<{ end: string; afterSigtermMs: number }> = [];
  const watchedIds: string[] = [];
  let rolling: Promise<number> | undefined;
  let submitted = 0;
  let rolledAfter: number | undefined;
  const startedAt = Date.now();
  // A submission every 80 ms, half to each gateway, from before the first SIGTERM until AFTER_ROLLING submissions
  // after the second gateway is back, so both restarts happen while tasks keep arriving (~15 s on a quiet machine).
  const more = (i: number) => i < MAX_GATEWAY_TASKS && (rolledAfter === undefined || i < rolledAfter + AFTER_ROLLING);
  const load = steadyLoad(clients, more, 80, (i) => {
    submitted = i + 1;
    if (i !== 5) return;
    rolling = (async () => {
      for (const [index, gateway] of gateways.entries()) {
        // Streams open on the gateway about to stop, watching tasks that run for a while (4 s).
        const watched = await Promise.all(
          Array.from({ length: WATCHED_PER_GATEWAY }, async () => {
            const request = { type: "sleep", payload: { ms: 4_000 }, idempotencyKey: `watched-${crypto.randomUUID()}` };
            const { taskId } = await submitUntilAccepted(clients, request, 10_000, index);
            watchedIds.push(taskId);
            return openStream(clients[index]!, taskId);
          }),
        );
        const sigtermAt = Date.now();
        const ends = Promise.all(watched.map(streamEnd));
        stops.push(await stopAndRestart(gateway));
        for (const { end, at } of await ends) streamEnds.push({ end, afterSigtermMs: at - sigtermAt });
      }
      return Date.now();
    })();
    rolling.finally(() => (rolledAfter = submitted)).catch(() => undefined);
  });
  const loadIds = await load.accepted;
  const loadEndedAt = Date.now();
  const rolledAt = await rolling;
  const taskIds = [...loadIds, ...watchedIds];
  console.log(
    `[reliability] gateway SIGTERM + restart, one then the other, done after ${(rolledAt ?? 0) - startedAt} ms; ` +
      `load ran ${loadEndedAt - startedAt} ms; ${taskIds.length} tasks; exits ${JSON.stringify(stops)}; ` +
      `failed attempts per gateway (retried on the other) ${load.failedAttempts()} ` +
      `${JSON.stringify(load.retryReasons())}; ` +
      `streams ended ${JSON.stringify(streamEnds)}`,
  );
  const deadlineMs = Number(FAST_FLOW.SHUTDOWN_TIMEOUT_MS);
  expect(stops.map((s) => s.code)).toEqual([0, 0]);
  expect(stops.filter((s) => s.exitMs > deadlineMs)).toEqual([]);
  // Each gateway was stopped while submissions were being sent to it: some failed there and went to the other.
  expect(load.failedAttempts().every((n) => n > 0)).toBe(true);
  // Streams end with UNAVAILABLE (the gateway ends them first thing) or complete; none waits for the deadline.
  expect(streamEnds).toHaveLength(2 * WATCHED_PER_GATEWAY);
  expect(streamEnds.filter((s) => !["Unavailable", "completed"].includes(s.end))).toEqual([]);
  expect(streamEnds.filter((s) => s.afterSigtermMs > deadlineMs)).toEqual([]);

  // One task per idempotency key: the tasks created during the test are exactly the accepted ones.
  expect(new Set(taskIds).size).toBe(taskIds.length);
  const created = (await pipeline.redisClient.zrange(Keys.taskIndex, 0, -1)).filter((id) => !tasksBefore.has(id));
  expect(created.sort()).toEqual([...taskIds].sort());
  expect(await waitAllTerminal(pipeline.redisClient, taskIds, 40_000)).toEqual([]);
  await waitDrained(nc, "result-store", Subjects.results);
  await waitDrained(nc, "audit", Subjects.audit);
  const accounting = await resultAccounting(nc, pipeline.redisClient, taskIds);
  expect(accounting.filter((a) => a.resultMessages !== 1 || !a.resultKey || a.resultStored !== 1)).toEqual([]);
  // A client whose stream was ended re-opens it on a gateway and gets the current (terminal) status.
  for (const taskId of watchedIds) {
    expect(stateNames(await collectStream(clients[0]!, taskId, 10_000))).toEqual([TaskState[TaskState.SUCCEEDED]]);
  }
}, 120_000);

const ENRICHER_TASKS = 60;

test("SIGTERM to the enricher while ingest calls it: exit 0, calls retried, every task SUCCEEDED once, none dead-lettered", async () => {
  // Retry delays covering an enricher restart (the pipeline's add up to 0.7 s): 1 + 2 + 4 + 8 s before the last try.
  await pipeline.services.get("ingest")!.process.stop();
  await pipeline.spawn("ingest", { FLOW_RETRY_DELAYS_MS: "1000,2000,4000,8000,8000" });
  const enricher = pipeline.services.get("enricher")!;
  let restart: ReturnType<typeof stopAndRestart> | undefined;
  const load = steadyLoad(pipeline.client, ENRICHER_TASKS, 80, (i) => {
    if (i === 10) restart = stopAndRestart(enricher);
  });
  const taskIds = await load.accepted;
  const stop = await restart!;
  expect(await waitAllTerminal(pipeline.redisClient, taskIds, 40_000)).toEqual([]);
  // The result-store first: its result_stored audits reach the audit service only once it has handled its results.
  await waitDrained(nc, "result-store", Subjects.results);
  await Promise.all([waitDrained(nc, "audit", Subjects.audit), waitDrained(nc, "deadletter", Subjects.deadletter)]);
  const ids = new Set(taskIds);
  const retries = (await pipeline.redisClient.lrange(Keys.auditEvents, 0, -1))
    .map((line) => JSON.parse(line) as { taskId?: string; action: string })
    .filter((e) => e.action === "enrich_retry" && e.taskId && ids.has(e.taskId));
  console.log(
    `[reliability] enricher SIGTERM under a ${ENRICHER_TASKS}-task load → exit ${stop.code} after ${stop.exitMs} ms, ` +
      `ready again after ${stop.downMs} ms; ${retries.length} enricher calls retried ` +
      `(${new Set(retries.map((e) => e.taskId)).size} tasks)`,
  );
  expect(stop.code).toBe(0);
  // The restart was met: calls failed while the enricher was down and were retried.
  expect(retries.length).toBeGreaterThan(0);
  const letters = await readDeadLetters(pipeline.redisClient, 0, 1_000);
  expect(letters.filter((l) => l.taskId && ids.has(l.taskId))).toEqual([]);
  // Enriched and handed on once per task, one result each.
  const scheduled = await countByTask(nc, "TASKS", Subjects.schedule);
  expect(taskIds.filter((id) => scheduled.get(id) !== 1)).toEqual([]);
  const accounting = await resultAccounting(nc, pipeline.redisClient, taskIds);
  expect(accounting.filter((a) => a.resultMessages !== 1 || !a.resultKey || a.resultStored !== 1)).toEqual([]);
}, 90_000);
