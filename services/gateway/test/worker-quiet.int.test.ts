/**
 * AdminService QuietWorker / ResumeWorker against a real nats-server and redis-server: the mark is set on a live
 * worker only (NOT_FOUND otherwise, naming it), a repeat changes nothing, each change is audited once with who made
 * it, and ListWorkers shows a worker quiet as the worker reports it. (What the worker does: services/worker quiet.)
 */
import { Code } from "@connectrpc/connect";
import { Keys, reportWorker, type WorkerReport } from "@tm/store";
import { useClients, useInfra } from "@tm/testkit";
import { expect, test } from "vitest";
import { auditActionsOf, rejection, useGateway } from "./helpers.js";

const infra = useInfra();
const clients = useClients(infra);
const g = useGateway(infra);

function report(id: string, quiet = false): WorkerReport {
  const now = Date.now();
  return {
    id,
    host: "box",
    pid: 7,
    startedAtMs: now - 1_000,
    concurrency: 4,
    queued: 0,
    pausedQueues: [],
    runningCount: 0,
    running: [],
    abandoned: 0,
    quiet,
    seenAtMs: now,
  };
}

/** The worker_quieted / worker_resumed audit events of a worker, oldest first, with who made the change. */
const quietAudits = (worker: string) =>
  auditActionsOf(clients.nc, (event) => event.detail?.worker === worker && event.action.startsWith("worker_"));

test("a live worker is quieted and resumed; repeats change nothing; each change audited once", async () => {
  await reportWorker(clients.redis, report("box:7"), 60_000);
  expect(await g.admin.quietWorker({ workerId: "box:7" })).toMatchObject({ changed: true });
  expect(await clients.redis.exists(Keys.workerQuiet("box:7"))).toBe(1);
  // Listed as asked (when, by whom: no caller without authentication), before the worker applies it.
  const asked = (await g.admin.listWorkers({})).workers.find((worker) => worker.id === "box:7");
  expect(asked).toMatchObject({ quiet: false, quietRequested: { by: "" } });
  expect(asked?.quietRequested?.at).toBeDefined();
  expect(await g.admin.quietWorker({ workerId: "box:7" })).toMatchObject({ changed: false });
  expect(await g.admin.resumeWorker({ workerId: "box:7" })).toMatchObject({ changed: true });
  expect(await clients.redis.exists(Keys.workerQuiet("box:7"))).toBe(0);
  expect(
    (await g.admin.listWorkers({})).workers.find((worker) => worker.id === "box:7")?.quietRequested,
  ).toBeUndefined();
  expect(await g.admin.resumeWorker({ workerId: "box:7" })).toMatchObject({ changed: false });
  expect(await quietAudits("box:7")).toEqual(["worker_quieted", "worker_resumed"]);
});

test("ListWorkers shows a worker quiet as it reports itself, with its abandoned handlers", async () => {
  const since = Date.now() - 5_000;
  await reportWorker(
    clients.redis,
    { ...report("box:8", true), abandoned: 1, abandonedHandlers: [{ taskId: "t-1", type: "sleep", sinceMs: since }] },
    60_000,
  );
  const listed = (await g.admin.listWorkers({})).workers.find((worker) => worker.id === "box:8");
  expect(listed).toMatchObject({ id: "box:8", quiet: true, concurrency: 4, abandoned: 1 });
  expect(listed?.abandonedHandlers).toHaveLength(1);
  expect(listed?.abandonedHandlers[0]).toMatchObject({ taskId: "t-1", type: "sleep" });
  expect(Number(listed?.abandonedHandlers[0]?.since?.seconds)).toBe(Math.floor(since / 1000));
});

test("an unknown, missing or too long worker id is refused, naming it", async () => {
  const unknown = await rejection(g.admin.quietWorker({ workerId: "gone:1" }));
  expect(unknown.code).toBe(Code.NotFound);
  expect(unknown.rawMessage).toBe('no live worker "gone:1" (taskctl workers lists them)');
  expect((await rejection(g.admin.resumeWorker({ workerId: "gone:1" }))).code).toBe(Code.NotFound);
  const missing = await rejection(g.admin.quietWorker({ workerId: "" }));
  expect(missing.code).toBe(Code.InvalidArgument);
  expect(missing.rawMessage).toMatch(/^worker_id: is required/);
  const long = await rejection(g.admin.resumeWorker({ workerId: "x".repeat(301) }));
  expect(long.code).toBe(Code.InvalidArgument);
  expect(long.rawMessage).toMatch(/^worker_id: must be at most 300 characters/);
  expect(await quietAudits("gone:1")).toEqual([]);
});
