/**
 * Fault: a worker is killed (SIGKILL) after its handler submitted child tasks (ctx.submitTask) and before the parent
 * finished. After AckWait the parent is redelivered to another worker, whose attempt submits the same children again:
 * the gateway hands back the ones the dead attempt made (their idempotency keys are derived from the parent, not the
 * attempt), so the pipeline holds each child once, each ran once, and the parent SUCCEEDED listing them. What the
 * killed attempt logged (ctx.log) before it died is kept with the task, the retry's lines after it, none twice.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TaskState } from "@tm/proto";
import { waitFor } from "@tm/testkit";
import { afterAll, beforeAll, expect, test } from "vitest";
import { collectStream, type Pipeline, startPipeline, stateNames } from "../support/pipeline.js";
import { workerInFlight } from "../support/reliability.js";

const ACK_WAIT_MS = 2_000;
const CHILDREN = 3;
const dir = mkdtempSync(join(tmpdir(), "tm-children-"));
/** fan-out submits `children` echo tasks, then, on its first attempt, waits until its worker dies. */
const MODULE = join(dir, "fan-out.mjs");
writeFileSync(
  MODULE,
  `export const handlers = [{
  type: "fan-out",
  async run(payload, { attempt, submitTask, signal, log }) {
    const children = [];
    for (let i = 0; i < payload.children; i++) {
      children.push(await submitTask({ type: "echo", payload: { i } }));
      log.warn({ i }, "child submitted"); // warn: the test kit runs the services at LOG_LEVEL=warn
    }
    if (attempt === 1) await new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
    return { children: children.map((c) => c.taskId), found: children.filter((c) => c.deduplicated).length, attempt };
  },
}];
`,
);
/** fan-out runs on the workers of pool "kids", started after the gateway (they need its address). */
const env = { TASK_TYPES: "fan-out", TASK_ROUTES: "fan-out=kids", FLOW_ACK_WAIT_MS: String(ACK_WAIT_MS) };
let pipeline: Pipeline;

beforeAll(async () => {
  // Only the "kids" workers spawned below are killed: the pipeline's own nine share one process.
  pipeline = await startPipeline({ env, ownProcess: [], perService: { worker: { WORKER_HANDLER_MODULES: MODULE } } });
  for (const key of ["kids-1", "kids-2"]) {
    await pipeline.spawn(
      "worker",
      {
        WORKER_POOL: "kids",
        WORKER_ID: key,
        WORKER_HANDLER_MODULES: MODULE,
        WORKER_GATEWAY_URL: pipeline.gatewayUrl,
      },
      key,
    );
  }
}, 90_000);
afterAll(async () => {
  await pipeline?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

test("a worker SIGKILLed after submitting children: the retry gets the same children, each made and run once", async () => {
  const { taskId } = await pipeline.client.submitTask({ type: "fan-out", payload: { children: CHILDREN } });
  const stream = collectStream(pipeline.client, taskId, 60_000);
  // The first attempt has made its children and waits: kill the worker running it.
  await waitFor("the first attempt's children", async () => {
    const { task } = await pipeline.client.getTask({ taskId });
    return task?.childrenTotal === CHILDREN;
  });
  // Its lines are written within 250 ms of being logged: stored before the kill.
  await waitFor(
    "the first attempt's lines kept with the task",
    async () => (await pipeline.client.getTaskLogs({ taskId })).lines.length === CHILDREN,
  );
  const workers = ["kids-1", "kids-2"].map((key) => pipeline.services.get(key)!);
  let counts: number[] = [];
  await waitFor("the worker running the parent", async () => {
    counts = await Promise.all(workers.map(workerInFlight));
    return counts.includes(1);
  });
  await workers[counts.indexOf(1)]!.process.kill();

  const updates = await stream;
  expect(stateNames(updates).at(-1), stateNames(updates).join(" → ")).toBe("SUCCEEDED");
  const { task } = await pipeline.client.getTask({ taskId });
  const result = task?.result as { children: string[]; found: number; attempt: number };
  expect(result.attempt).toBe(2);
  // The retry submitted its three children again and was handed the first attempt's: none made twice.
  expect(result.found).toBe(CHILDREN);
  expect(task?.childrenTotal).toBe(CHILDREN);
  expect(new Set(task?.children)).toEqual(new Set(result.children));
  // The killed attempt's lines, then the retry's, each once.
  const { lines } = await pipeline.client.getTaskLogs({ taskId });
  expect(lines.map((line) => [line.attempt, line.message, line.fields?.i])).toEqual([
    ...[0, 1, 2].map((i) => [1, "child submitted", i]),
    ...[0, 1, 2].map((i) => [2, "child submitted", i]),
  ]);
  for (const [i, child] of result.children.entries()) {
    const updates = await collectStream(pipeline.client, child, 30_000);
    expect(updates.at(-1)?.status?.state).toBe(TaskState.SUCCEEDED);
    const { task: childTask } = await pipeline.client.getTask({ taskId: child });
    expect(childTask).toMatchObject({ parentTaskId: taskId, payload: { i } });
  }
}, 120_000);
