/**
 * The deployment's own task types in a running worker (TASK_TYPES, WORKER_HANDLER_MODULES) against real nats-server
 * and redis-server: a handler module loaded at start runs its tasks, and its type's retry policy (maxAttempts,
 * retryBackoff) applies to tasks submitted without their own, while a task's own max_attempts still comes first; its
 * own concurrency limit holds its tasks to one at a time in a worker of 8 slots; the worker's report for operators
 * names the types it loaded.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readWorkerReport } from "@tm/store";
import { useInfra, waitFor } from "@tm/testkit";
import { afterAll, expect, test } from "vitest";
import { DEFAULT_WORKER_ID } from "../src/presence.js";
import { enrichedTask, publishTask, useWatchedWorker } from "./support.js";

const dir = mkdtempSync(join(tmpdir(), "tm-own-types-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const modulePath = join(dir, "handlers.mjs");
writeFileSync(
  modulePath,
  `export const handlers = [
    { type: "shout", run: ({ text }) => ({ text: String(text).toUpperCase() }) },
    {
      type: "flaky-api",
      maxAttempts: 2,
      retryBackoff: { delayMs: 40, multiplier: 3 },
      run: (_payload, { attempt }) => { throw new Error("the API is down (attempt " + attempt + ")"); },
    },
    {
      type: "one-at-a-time",
      concurrency: 1,
      async run() {
        const seen = (globalThis.__tmOneAtATime ??= { now: 0, max: 0 });
        seen.max = Math.max(seen.max, ++seen.now);
        await new Promise((resolve) => setTimeout(resolve, 150));
        seen.now--;
        return {};
      },
    },
  ];`,
);

const infra = useInfra();
const w = useWatchedWorker(infra, {
  TASK_TYPES: "shout,flaky-api,one-at-a-time",
  WORKER_HANDLER_MODULES: modulePath,
});

async function refreshed<T>(read: () => T): Promise<T> {
  await Promise.all([w.events.refresh(), w.tasks.refresh()]);
  return read();
}

test("a task of a type from the module runs to SUCCEEDED with the handler's result", async () => {
  const task = enrichedTask("shout", { text: "quiet" });
  await publishTask(w.nc, task);
  await waitFor("SUCCEEDED", async () =>
    (await refreshed(() => w.events.statuses(task.taskId))).some((s) => s.state === "SUCCEEDED"),
  );
  expect(w.tasks.results(task.taskId)[0]).toMatchObject({ type: "shout", output: { text: "QUIET" }, attempts: 1 });
});

test("the type's maxAttempts and retryBackoff apply to a task without its own; its own max_attempts comes first", async () => {
  const byType = enrichedTask("flaky-api", {});
  const ownLimit = { ...enrichedTask("flaky-api", {}), maxAttempts: 3 };
  await Promise.all([publishTask(w.nc, byType), publishTask(w.nc, ownLimit)]);
  await waitFor(
    "both dead-lettered",
    async () => await refreshed(() => [byType, ownLimit].every((t) => w.events.deadLetters(t.taskId).length > 0)),
  );
  expect(w.events.deadLetters(byType.taskId)[0]).toMatchObject({ reason: "exhausted", attempts: 2 });
  expect(w.events.deadLetters(ownLimit.taskId)[0]).toMatchObject({ reason: "exhausted", attempts: 3 });
  // The waits the type asked for (40 ms, then ×3), not FLOW_RETRY_DELAYS_MS (100, 200, … here).
  const waits = (taskId: string) =>
    w.events
      .audits(taskId)
      .filter((a) => a.action === "attempt_failed")
      .map((a) => a.detail?.retryInMs);
  expect(waits(byType.taskId)).toEqual([40]);
  expect(waits(ownLimit.taskId)).toEqual([40, 120]);
});

test("its report for operators names the types it loaded (ListWorkers, taskctl workers: which workers have them)", async () => {
  const report = await readWorkerReport(w.redis, DEFAULT_WORKER_ID);
  expect(report?.ownTaskTypes).toEqual(["shout", "flaky-api", "one-at-a-time"]);
});

test("the type's own concurrency holds its tasks to one at a time in a worker with eight slots", async () => {
  const tasks = [1, 2, 3].map(() => enrichedTask("one-at-a-time", {}));
  await Promise.all(tasks.map((task) => publishTask(w.nc, task)));
  await waitFor(
    "all three SUCCEEDED",
    async () =>
      await refreshed(() => tasks.every((t) => w.events.statuses(t.taskId).some((s) => s.state === "SUCCEEDED"))),
  );
  expect((globalThis as { __tmOneAtATime?: { max: number } }).__tmOneAtATime?.max).toBe(1);
});
