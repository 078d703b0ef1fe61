/**
 * Fault: a rolling restart. While tasks flow, worker, ingest, scheduler, notifier, result-store, audit and
 * deadletter are each sent SIGTERM in turn (and started again): each exits 0 after draining, and every task reaches
 * SUCCEEDED with exactly one result and one `result_stored` audit entry.
 *
 * Not rolled here: the gateway (the test's only client connection; services/gateway/test/gateway.int.test.ts shows
 * that stopping it ends open streams with UNAVAILABLE at once) and the enricher (the test pipeline's retry delays
 * add up to 0.7 s, less than a process restart, so ingest would dead-letter by design; the enricher-down behaviour
 * has its own tests).
 */
import { Subjects } from "@tm/flow";
import type { NatsConnection } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { type Pipeline, startPipeline } from "../support/pipeline.js";
import { connectTo, resultAccounting, steadyLoad, waitAllTerminal, waitDrained } from "../support/reliability.js";

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
