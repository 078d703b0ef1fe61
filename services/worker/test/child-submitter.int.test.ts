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
import { attemptSubmitTask } from "../src/child-tasks.js";
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

test("a fan-out past the gateway's rate limit waits it out within the attempt, and its retry is handed the same children", async () => {
  const waits: number[] = [];
  const submitter = grpcChildSubmitter({ baseUrl, apiKey: KEY, onRateLimited: (ms) => waits.push(ms) });
  const fanOut = async () => {
    const submit = attemptSubmitTask(submitter, PARENT, new AbortController().signal);
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
  const kept = await attemptSubmitTask(
    submitter,
    PARENT,
    new AbortController().signal,
  )({
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
    attemptSubmitTask(
      grpcChildSubmitter({ baseUrl: url, apiKey }),
      PARENT,
      new AbortController().signal,
    )({
      type: "echo",
    }).then(
      () => new Error("submitted"),
      (error: unknown) => error as Error,
    );
  const refused = await submit(baseUrl, "not-a-key-0123456789abcdef");
  expect(refused.name).toBe("Error");
  expect(refused.message).toMatch(
    /^ctx\.submitTask\("echo"\): the gateway answered Unauthenticated: .*\(is WORKER_GATEWAY_API_KEY a key the gateway accepts\?\)$/,
  );
  const gone = await submit(`http://127.0.0.1:${await freePort()}`, KEY);
  expect(gone.name).toBe("Error");
  expect(gone.message).toMatch(/^ctx\.submitTask\("echo"\): the gateway answered Unavailable: /);
}, 30_000);
