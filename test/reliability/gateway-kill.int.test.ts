/**
 * Fault: a gateway killed (SIGKILL) in the middle of submissions, without idempotency keys. To make the kill land
 * where it hurts, nats-server is frozen (SIGSTOP) first: the gateway's calls in flight then all have their task
 * record and PENDING in Redis and wait for their tasks.ingest PubAck, some with the message already on the wire
 * (it lands when nats-server resumes: the stream has it, the PubAck goes nowhere), some with it still in the dead
 * process's buffer (lost). Each left an entry in tasks_unqueued, which the surviving replica's requeue sweeper
 * settles: the lost ones are queued again, the landed ones are deduplicated by the stream. Afterwards no task Redis
 * holds is left PENDING: every one is SUCCEEDED with exactly one result, including those whose caller saw the call
 * fail (as after any failed call without an idempotency key, the task may have run).
 */
import { Subjects } from "@tm/flow";
import { createTaskClient, Priority } from "@tm/proto";
import { Keys, readStatus } from "@tm/store";
import { waitFor } from "@tm/testkit";
import type { NatsConnection } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { type Pipeline, startPipeline } from "../support/pipeline.js";
import { actionsOf, connectTo, resultAccounting, waitAllTerminal, waitDrained } from "../support/reliability.js";

/** Submissions in flight at once on the gateway that is killed: enough that the kill lands inside some of them. */
const CONCURRENCY = 48;
const ACCEPTED_BEFORE_KILL = 150;
let pipeline: Pipeline;
let nc: NatsConnection;

beforeAll(async () => {
  // The gateway is SIGKILLed: its own process; the rest share one.
  pipeline = await startPipeline({ ownProcess: ["gateway"] });
  // The survivor sweeps every ~330 ms, taking entries older than 1 s (the default, 30 s, is a test's whole patience).
  await pipeline.spawn("gateway", { GATEWAY_REQUEUE_AFTER_MS: "1000" }, "gateway-2");
  nc = await connectTo(pipeline.nats.url);
}, 90_000);
afterAll(async () => {
  await nc?.close();
  await pipeline?.dispose();
});

test("SIGKILL to a gateway mid-submission: no task left PENDING, every task Redis holds SUCCEEDED once", async () => {
  const victim = pipeline.services.get("gateway")!;
  const client = createTaskClient({ baseUrl: `http://127.0.0.1:${victim.port}` });
  const redis = pipeline.redisClient;
  const before = new Set(await redis.zrange(Keys.taskIndex, 0, -1));
  const accepted: string[] = [];
  let failedCalls = 0;
  let killed = false;
  const loops = Array.from({ length: CONCURRENCY }, async (_, loop) => {
    for (let i = 0; !killed; i++) {
      try {
        const request = { type: "echo", priority: Priority.MEDIUM, payload: { loop, i } };
        accepted.push((await client.submitTask(request, { timeoutMs: 10_000 })).taskId);
      } catch {
        failedCalls += 1;
        return;
      }
    }
  });
  await waitFor(`${ACCEPTED_BEFORE_KILL} accepted submissions`, () => accepted.length >= ACCEPTED_BEFORE_KILL, {
    timeoutMs: 60_000,
  });
  const natsPid = pipeline.nats.process.pid!;
  process.kill(natsPid, "SIGSTOP");
  let leftUnqueued: number;
  try {
    // Every loop's call in flight has written Redis and waits for its PubAck.
    await waitFor(`${CONCURRENCY} submissions waiting for their PubAck`, async () => {
      return (await redis.zcard(Keys.unqueued)) >= CONCURRENCY;
    });
    await victim.process.kill();
    killed = true;
    leftUnqueued = await redis.zcard(Keys.unqueued);
  } finally {
    process.kill(natsPid, "SIGCONT");
  }
  await Promise.all(loops);

  const created = (await redis.zrange(Keys.taskIndex, 0, -1)).filter((id) => !before.has(id));
  const unanswered = created.filter((id) => !accepted.includes(id));
  console.log(
    `[reliability] gateway SIGKILL after ${accepted.length} accepted submissions: ${failedCalls} calls failed, ` +
      `${created.length} tasks in Redis (${unanswered.length} whose call failed), ${leftUnqueued} left unqueued`,
  );
  expect(accepted.every((id) => created.includes(id))).toBe(true);
  expect(unanswered.length).toBeGreaterThanOrEqual(CONCURRENCY);

  // Every task Redis holds runs, once: those queued before the kill, and those the survivor's sweeper requeued.
  expect(await waitAllTerminal(redis, created, 30_000)).toEqual([]);
  const states = await Promise.all(created.map(async (id) => (await readStatus(redis, id))?.state));
  expect(states.filter((state) => state !== "SUCCEEDED")).toEqual([]);
  await waitDrained(nc, "result-store", Subjects.results);
  // The result-store's result_stored audits are in the stream by now; in Redis once the audit service has drained.
  await waitDrained(nc, "audit", Subjects.audit);
  const accounting = await resultAccounting(nc, redis, created);
  expect(accounting.filter((a) => a.resultMessages !== 1 || !a.resultKey || a.resultStored !== 1)).toEqual([]);
  await waitFor("tasks_unqueued to empty", async () => (await redis.zcard(Keys.unqueued)) === 0);
  // Requeued (audited) are the ones whose message had been lost with the process; the others had landed.
  const requeued = (await Promise.all(unanswered.map((id) => actionsOf(redis, id, "requeued")))).flat().length;
  console.log(`[reliability] of the ${leftUnqueued} left unqueued, ${requeued} were requeued, the rest had landed`);
}, 120_000);
