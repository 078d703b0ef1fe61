/**
 * The workers' reports (workers, worker:<id>) against a real redis-server: written, listed by id, replaced by the
 * next report, removed by a stopping worker, expired for a dead one (and its id trimmed by the next report of any
 * worker); a report that is not JSON is left out.
 */
import { useClients, useInfra, waitFor } from "@tm/testkit";
import { beforeEach, expect, test } from "vitest";
import {
  forgetWorker,
  Keys,
  listWorkers,
  readWorkerControls,
  reportWorker,
  setWorkerQuiet,
  type WorkerReport,
} from "../src/index.js";

const clients = useClients(useInfra());
beforeEach(async () => {
  await clients.redis.flushdb();
});

function report(id: string, seenAtMs: number, running = 0): WorkerReport {
  return {
    id,
    host: id.split(":")[0]!,
    pid: Number(id.split(":")[1]),
    startedAtMs: seenAtMs - 1_000,
    concurrency: 8,
    queued: 2,
    pausedQueues: ["low"],
    runningCount: running,
    running: Array.from({ length: running }, (_, i) => ({
      taskId: `task-${i}`,
      type: "sleep",
      priority: "medium",
      attempt: 1,
      startedAtMs: seenAtMs - 10,
    })),
    seenAtMs,
  };
}

test("reports are listed by id, each the latest; a stopping worker's goes at once", async () => {
  const now = Date.now();
  await reportWorker(clients.redis, report("b-host:2", now, 1), 60_000);
  await reportWorker(clients.redis, report("a-host:1", now), 60_000);
  await reportWorker(clients.redis, report("b-host:2", now + 5, 3), 60_000);
  const listed = await listWorkers(clients.redis);
  expect(listed.map((w) => [w.id, w.runningCount, w.running.length])).toEqual([
    ["a-host:1", 0, 0],
    ["b-host:2", 3, 3],
  ]);
  expect(listed[1]).toEqual(report("b-host:2", now + 5, 3));
  await forgetWorker(clients.redis, "b-host:2");
  expect((await listWorkers(clients.redis)).map((w) => w.id)).toEqual(["a-host:1"]);
  expect(await clients.redis.zrange(Keys.workers, 0, -1)).toEqual(["a-host:1"]);
});

test("a dead worker's report expires, and the next report of any worker trims its id", async () => {
  const now = Date.now();
  await reportWorker(clients.redis, report("dead:1", now - 1_000), 200);
  await reportWorker(clients.redis, report("alive:2", now), 60_000);
  await waitFor(
    "the dead worker's report to expire",
    async () => (await clients.redis.exists(Keys.worker("dead:1"))) === 0,
  );
  expect((await listWorkers(clients.redis)).map((w) => w.id)).toEqual(["alive:2"]);
  // Its id is still in the set until a report trims ids older than that report's TTL.
  await reportWorker(clients.redis, report("alive:2", Date.now()), 500);
  expect(await clients.redis.zrange(Keys.workers, 0, -1)).toEqual(["alive:2"]);
});

test("a report that is not JSON (written by hand) is left out", async () => {
  await reportWorker(clients.redis, report("ok:1", Date.now()), 60_000);
  await clients.redis.zadd(Keys.workers, Date.now(), "bad:2");
  await clients.redis.set(Keys.worker("bad:2"), "not json");
  expect((await listWorkers(clients.redis)).map((w) => w.id)).toEqual(["ok:1"]);
});

test("a quiet mark is set only on a live worker, with its report's TTL, renewed by reports, and goes with the worker", async () => {
  const mark = { at: "2026-12-06T08:00:00.000Z", by: "ops" };
  expect(await setWorkerQuiet(clients.redis, "host-a:1", true, mark)).toBe("not-found");
  expect(await setWorkerQuiet(clients.redis, "host-a:1", false, mark)).toBe("not-found");
  expect(await clients.redis.exists(Keys.workerQuiet("host-a:1"))).toBe(0);

  await reportWorker(clients.redis, report("host-a:1", Date.now()), 60_000);
  expect(await readWorkerControls(clients.redis, "host-a:1")).toEqual({ pausedQueues: [], quiet: false });
  expect(await setWorkerQuiet(clients.redis, "host-a:1", true, mark)).toBe(true);
  expect(await setWorkerQuiet(clients.redis, "host-a:1", true, mark)).toBe(false); // quiet already
  expect(JSON.parse((await clients.redis.get(Keys.workerQuiet("host-a:1"))) ?? "")).toEqual(mark);
  expect(await clients.redis.pttl(Keys.workerQuiet("host-a:1"))).toBeLessThanOrEqual(60_000);
  expect(await readWorkerControls(clients.redis, "host-a:1")).toMatchObject({ quiet: true });
  expect((await listWorkers(clients.redis)).find((w) => w.id === "host-a:1")?.quietRequest).toEqual(mark);
  expect(await readWorkerControls(clients.redis, "host-b:1")).toMatchObject({ quiet: false });

  // The next report renews it with the report's own TTL; the process's first report clears it.
  await reportWorker(clients.redis, report("host-a:1", Date.now()), 120_000);
  expect(await clients.redis.pttl(Keys.workerQuiet("host-a:1"))).toBeGreaterThan(60_000);
  await reportWorker(clients.redis, report("host-a:1", Date.now()), 120_000, { first: true });
  expect(await clients.redis.exists(Keys.workerQuiet("host-a:1"))).toBe(0);

  expect(await setWorkerQuiet(clients.redis, "host-a:1", true, mark)).toBe(true);
  expect(await setWorkerQuiet(clients.redis, "host-a:1", false, mark)).toBe(true);
  expect(await setWorkerQuiet(clients.redis, "host-a:1", false, mark)).toBe(false); // not quiet
  expect(await setWorkerQuiet(clients.redis, "host-a:1", true, mark)).toBe(true);
  await forgetWorker(clients.redis, "host-a:1");
  expect(await clients.redis.exists(Keys.workerQuiet("host-a:1"))).toBe(0);
});

test("a quiet mark expires with a dead worker's report", async () => {
  await reportWorker(clients.redis, report("host-c:1", Date.now()), 200);
  expect(await setWorkerQuiet(clients.redis, "host-c:1", true, { at: "", by: "" })).toBe(true);
  await waitFor(
    "both gone",
    async () => (await clients.redis.exists(Keys.worker("host-c:1"), Keys.workerQuiet("host-c:1"))) === 0,
  );
});
