/**
 * ctx.submitTask's gateway client against a real gateway (in this process, on a real nats-server and redis-server),
 * authenticated as the workers with a tight rate limit: a fan-out larger than the burst gets through, its waits taken
 * within the attempt; submitted again (a retried attempt) it is handed the same children; a key the gateway does not
 * take, or a gateway that is not there, fails the attempt as one to retry, naming what answered.
 */
import { readTask } from "@tm/store";
import { freePort, useClients, useInfra } from "@tm/testkit";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startGateway } from "../../gateway/test/helpers.js";
import { attemptChildTasks, type ChildSubmitter } from "../src/child-tasks.js";
import { grpcChildSubmitter } from "../src/gateway-child-submitter.js";

const infra = useInfra();
const clients = useClients(infra);
const KEY = "workers-key-0123456789abcdef";
const PARENT = { taskId: crypto.randomUUID(), priority: "low" as const };
let baseUrl: string;
let stop: () => Promise<void>;

beforeAll(async () => {
  const started = await startGateway(infra, {
    LOG_LEVEL: "error",
    GATEWAY_AUTH_MODE: "api-key",
    GATEWAY_API_KEYS: `workers:${KEY}`,
    // Two calls at once, then one every 50 ms: a fan-out of 8 must wait.
    GATEWAY_RATE_LIMIT_PER_SEC: "20",
    GATEWAY_RATE_LIMIT_BURST: "2",
  });
  baseUrl = started.baseUrl;
  stop = started.stop;
}, 30_000);
afterAll(async () => {
  await stop?.();
});

/** An attempt's ctx.submitTask and ctx.submitTasks for PARENT, counting the times it was kept alive. */
function attempt(submitter: ChildSubmitter, keptAlive = { count: 0 }) {
  return attemptChildTasks(submitter, PARENT, {
    signal: new AbortController().signal,
    keepAlive: () => {
      keptAlive.count += 1;
    },
  });
}

test("a fan-out past the gateway's rate limit waits it out within the attempt, and its retry is handed the same children", async () => {
  const waits: number[] = [];
  const submitter = grpcChildSubmitter({ baseUrl, apiKey: KEY, batchSize: 2, onRateLimited: (ms) => waits.push(ms) });
  const fanOut = async () => {
    const submit = attempt(submitter).submitTask;
    return Promise.all(Array.from({ length: 8 }, (_, i) => submit({ type: "echo", payload: { i } })));
  };
  const first = await fanOut();
  expect(new Set(first.map((child) => child.taskId)).size).toBe(8);
  expect(first.every((child) => !child.deduplicated)).toBe(true);
  expect(waits.length, "the rate limit was met and waited out").toBeGreaterThan(0);

  const again = await fanOut();
  expect(again.map((child) => child.taskId)).toEqual(first.map((child) => child.taskId));
  expect(again.every((child) => child.deduplicated)).toBe(true);
  // A child's own limits reach the gateway as SubmitTask's (which checks their bounds).
  const kept = await attempt(submitter).submitTask({
    type: "echo",
    key: "kept",
    succeededRetentionSeconds: 120,
    retryBackoff: { delayMs: 250, multiplier: 2 },
    expiresAfterMs: 60_000,
  });
  expect(await readTask(clients.redis, kept.taskId)).toMatchObject({
    succeededRetentionSeconds: 120,
    retryBackoff: { delayMs: 250, multiplier: 2 },
    expiresAfterMs: 60_000,
  });
  // Read from Redis: a GetTask now would meet the same rate limit.
  expect(await readTask(clients.redis, first[3]!.taskId)).toMatchObject({
    parentTaskId: PARENT.taskId,
    payload: { i: 3 },
    priority: "low",
    idempotencyKey: `child:${PARENT.taskId}:n:4`,
  });
}, 30_000);

test("a key the gateway does not take, or no gateway at all: an error the attempt is retried after, naming it", async () => {
  const submit = (url: string, apiKey: string) =>
    attempt(grpcChildSubmitter({ baseUrl: url, apiKey, batchSize: 2 }))
      .submitTask({ type: "echo" })
      .then(
        () => new Error("submitted"),
        (error: unknown) => error as Error,
      );
  const refused = await submit(baseUrl, "not-a-key-0123456789abcdef");
  expect(refused.name).toBe("Error");
  expect(refused.message).toMatch(
    /^ctx\.submitTask\("echo"\): the gateway answered Unauthenticated: .*\(is WORKER_GATEWAY_API_KEY, or the key in WORKER_GATEWAY_API_KEY_FILE, one the gateway accepts\?\)$/,
  );
  const gone = await submit(`http://127.0.0.1:${await freePort()}`, KEY);
  expect(gone.name).toBe("Error");
  expect(gone.message).toMatch(/^ctx\.submitTask\("echo"\): the gateway answered Unavailable: /);
}, 30_000);

test("ctx.submitTasks: a fan-out and its fan-in in calls of the batch size, waiting out the rate limit; a retry is handed the same; a refused child fails the attempt naming it", async () => {
  const waits: number[] = [];
  const keptAlive = { count: 0 };
  const submitter = grpcChildSubmitter({ baseUrl, apiKey: KEY, batchSize: 2, onRateLimited: (ms) => waits.push(ms) });
  const batchParent = { taskId: crypto.randomUUID(), priority: "high" as const };
  const fanOut = () =>
    attemptChildTasks(submitter, batchParent, {
      signal: new AbortController().signal,
      keepAlive: () => (keptAlive.count += 1),
    }).submitTasks([
      ...Array.from({ length: 5 }, (_, i) => ({ type: "echo", payload: { i } })),
      // Its dependencies span three calls of 2: four named by id, one (place 4) by its place in its own call.
      { type: "echo", key: "total", dependsOnBatchItems: [0, 1, 2, 3, 4] },
    ]);
  const first = await fanOut();
  expect(new Set(first.map((child) => child.taskId)).size).toBe(6);
  expect(first.every((child) => !child.deduplicated)).toBe(true);
  expect(waits.length, "three calls of 2 tokens on a burst of 2: the limit was waited out").toBeGreaterThan(0);
  expect(keptAlive.count, "the waits kept the attempt alive").toBeGreaterThan(0);
  const total = await readTask(clients.redis, first[5]!.taskId);
  expect(new Set(total?.dependsOn)).toEqual(new Set(first.slice(0, 5).map((child) => child.taskId)));
  expect(total).toMatchObject({
    parentTaskId: batchParent.taskId,
    priority: "high",
    idempotencyKey: `child:${batchParent.taskId}:key:total`,
  });

  const again = await fanOut();
  expect(again.map((child) => child.taskId)).toEqual(first.map((child) => child.taskId));
  expect(again.every((child) => child.deduplicated)).toBe(true);

  // The gateway refuses a child (a type it does not run): a PermanentError naming the request by its place in the
  // handler's list.
  const refused = await attemptChildTasks(
    submitter,
    { taskId: crypto.randomUUID(), priority: "low" },
    {
      signal: new AbortController().signal,
    },
  )
    .submitTasks([{ type: "echo" }, { type: "no-such-type" }])
    .then(
      () => new Error("submitted"),
      (error: unknown) => error as Error,
    );
  expect(refused.name).toBe("PermanentError");
  expect(refused.message).toMatch(
    /^ctx\.submitTasks: requests\[1\] \("no-such-type"\): the gateway answered InvalidArgument: /,
  );
}, 30_000);

test("a key read on each call (WORKER_GATEWAY_API_KEY_FILE's): the gateway is sent the key of the moment", async () => {
  let current = "not-a-key-0123456789abcdef";
  const submitter = grpcChildSubmitter({ baseUrl, apiKey: async () => current, batchSize: 2 });
  const parent = { taskId: crypto.randomUUID(), priority: "low" as const };
  const submit = () =>
    attemptChildTasks(submitter, parent, { signal: new AbortController().signal }).submitTask({ type: "echo" });
  await expect(submit()).rejects.toThrow(/the gateway answered Unauthenticated/);
  current = KEY; // rotated
  expect((await submit()).taskId).toMatch(/^[0-9a-f-]{36}$/);
}, 30_000);
