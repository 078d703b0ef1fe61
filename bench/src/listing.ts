/**
 * `pnpm --filter @tm/bench listing [N]`: how fast the operator listing (AdminService.ListTasks, the console's task
 * list) answers with N tasks in Redis (default 10,000). Seeds N tasks with their statuses into a fresh
 * redis-server, then times the first page, a deep page, a filter that matches a few tasks, a search that matches
 * none (a full scan of the index), and the per-state counts. Prints milliseconds; asserts nothing.
 */
import { type StatusEvent, statusEvent } from "@tm/flow";
import { applyStatus, countTaskStates, listIndexedTasks, saveTask } from "@tm/store";
import { startRedis } from "@tm/testkit";
import { Redis } from "ioredis";

const count = Number(process.argv[2] ?? 10_000);
const redis = await startRedis();
const client = new Redis(redis.url, { enableAutoPipelining: true });
try {
  const states = ["SUCCEEDED", "FAILED", "RUNNING", "PENDING"] as const;
  const started = Date.now();
  const batch: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const taskId = crypto.randomUUID();
    const createdAt = new Date(Date.now() - (count - i) * 10).toISOString();
    const type = i % 7 === 0 ? "checksum" : "echo";
    batch.push(
      saveTask(client, {
        taskId,
        type,
        priority: "medium",
        payload: { i },
        metadata: { n: String(i) },
        createdAt,
        generation: 0,
      }).then(() =>
        applyStatus(client, statusEvent({ taskId, state: states[i % states.length]!, source: "bench" }) as StatusEvent),
      ),
    );
    if (batch.length >= 500) await Promise.all(batch.splice(0));
  }
  await Promise.all(batch);
  console.log(`seeded ${count} tasks in ${Date.now() - started} ms`);

  const time = async (what: string, run: () => Promise<{ tasks?: unknown[] } | unknown>) => {
    const t0 = performance.now();
    const result = (await run()) as { tasks?: unknown[] };
    console.log(
      `${what.padEnd(52)} ${(performance.now() - t0).toFixed(1).padStart(8)} ms  ${result.tasks ? `${result.tasks.length} tasks` : ""}`,
    );
    return result;
  };
  await time("first page (50), no filter", () => listIndexedTasks(client, {}, 50));
  let page = await listIndexedTasks(client, {}, 50);
  for (let i = 0; i < 19 && page.next; i++) page = await listIndexedTasks(client, {}, 50, page.next);
  await time("page 21 (50), no filter", () => listIndexedTasks(client, {}, 50, page.next));
  await time("state FAILED + type checksum (first 50)", () =>
    listIndexedTasks(client, { state: "FAILED", type: "checksum" }, 50),
  );
  await time("search matching nothing (scans the whole index)", () =>
    listIndexedTasks(client, { query: "zzz-none" }, 50),
  );
  await time("per-state counts (newest 10,000)", () => countTaskStates(client));
} finally {
  client.disconnect();
  await redis.dispose();
}
