/**
 * The workers' reports (workers, worker:<id>) against a real redis-server: written, listed by id, replaced by the
 * next report, removed by a stopping worker, expired for a dead one (and its id trimmed by the next report of any
 * worker); a report that is not JSON is left out.
 */
import { useClients, useInfra, waitFor } from "@tm/testkit";
import { beforeEach, expect, test } from "vitest";
import { forgetWorker, Keys, listWorkers, reportWorker, type WorkerReport } from "../src/index.js";

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
