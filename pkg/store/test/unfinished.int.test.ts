/**
 * tasks_unfinished, kept by the status script: a task is entered with each non-terminal status applied (scored by the
 * update's time, or the stall clock the caller gives) and leaves with its terminal one; a stale update changes
 * nothing. unfinishedBefore reads the longest unmoved first, unfinishedAfter pages through them from a cursor;
 * trimUnfinished drops entries past the retention.
 */
import { StatusEventSchema, statusEvent, type TaskState } from "@tm/flow";
import { useClients, useInfra } from "@tm/testkit";
import { expect, test } from "vitest";
import {
  applyStatus,
  applyStatusBatch,
  forgetUnfinished,
  Keys,
  trimUnfinished,
  unfinishedAfter,
  unfinishedBefore,
} from "../src/index.js";

const clients = useClients(useInfra());

const event = (taskId: string, state: TaskState, updatedAt: string, generation = 0) =>
  StatusEventSchema.parse({ ...statusEvent({ taskId, state, source: "test", generation }), updatedAt });
const scoreOf = async (taskId: string) => {
  const score = await clients.redis.zscore(Keys.unfinished, taskId);
  return score === null ? undefined : Number(score);
};

test("each non-terminal status applied moves the task's clock; its terminal one takes it out; a stale one does nothing", async () => {
  const id = crypto.randomUUID();
  expect(await applyStatus(clients.redis, event(id, "PENDING", "2026-12-06T10:00:00.000Z"))).toBe(true);
  expect(await scoreOf(id)).toBe(Date.parse("2026-12-06T10:00:00.000Z"));
  const [ingested, scheduled] = await applyStatusBatch(clients.redis, [
    event(id, "INGESTED", "2026-12-06T10:00:01.000Z"),
    event(id, "SCHEDULED", "2026-12-06T10:00:02.000Z"),
  ]);
  expect([ingested, scheduled]).toEqual([true, true]);
  expect(await scoreOf(id)).toBe(Date.parse("2026-12-06T10:00:02.000Z"));
  expect(await applyStatus(clients.redis, event(id, "INGESTED", "2026-12-06T10:00:09.000Z"))).toBe(false); // stale
  expect(await scoreOf(id)).toBe(Date.parse("2026-12-06T10:00:02.000Z"));

  expect(await applyStatus(clients.redis, event(id, "SUCCEEDED", "2026-12-06T10:00:03.000Z"))).toBe(true);
  expect(await scoreOf(id)).toBeUndefined();
  // A new generation (a replay) is unfinished again.
  expect(await applyStatus(clients.redis, event(id, "PENDING", "2026-12-06T11:00:00.000Z", 1))).toBe(true);
  expect(await scoreOf(id)).toBe(Date.parse("2026-12-06T11:00:00.000Z"));
  // A task whose records expired while it waited for a dependency that never finished leaves tasks_waiting too.
  await clients.redis.hset(Keys.waiting, id, 1);
  await forgetUnfinished(clients.redis, [id]);
  expect(await scoreOf(id)).toBeUndefined();
  expect(await clients.redis.hexists(Keys.waiting, id)).toBe(0);
});

test("a delayed task's clock starts at its release time when the caller gives it", async () => {
  const id = crypto.randomUUID();
  const releaseMs = Date.parse("2026-12-07T00:00:00.000Z");
  await applyStatus(clients.redis, event(id, "PENDING", "2026-12-06T10:00:00.000Z"), undefined, {
    stallClockFromMs: releaseMs,
  });
  expect(await scoreOf(id)).toBe(releaseMs);
});

test("unfinishedBefore: the count and the longest unmoved first; trimUnfinished drops the older entries", async () => {
  const base = Date.parse("2000-01-01T00:00:00.000Z"); // before every other test's entries
  const ids = [0, 1, 2, 3].map(() => crypto.randomUUID());
  for (const [i, id] of ids.entries()) {
    await applyStatus(clients.redis, event(id, "SCHEDULED", new Date(base + (3 - i) * 1000).toISOString()));
  }
  expect(await unfinishedBefore(clients.redis, base + 2000, 2)).toEqual({ total: 3, taskIds: [ids[3], ids[2]] });
  expect(await trimUnfinished(clients.redis, base + 2000)).toBe(2);
  expect(await unfinishedBefore(clients.redis, base + 3000, 10)).toEqual({ total: 2, taskIds: [ids[1], ids[0]] });
  await forgetUnfinished(clients.redis, ids);
});

test("unfinishedAfter pages through the entries up to a time, longest unmoved first, ties by id, none twice", async () => {
  await clients.redis.del(Keys.unfinished);
  // Five at one time (a batch's PENDING), one before and one after them, and one past the time asked.
  const tied = ["t-c", "t-a", "t-e", "t-b", "t-d"];
  await clients.redis.zadd(Keys.unfinished, 100, "early", 200, "t-c", 200, "t-a", 200, "t-e", 200, "t-b", 200, "t-d");
  await clients.redis.zadd(Keys.unfinished, 300, "late", 900, "too-late");
  const pages: string[][] = [];
  let cursor: Awaited<ReturnType<typeof unfinishedAfter>>[number] | undefined;
  for (;;) {
    const page = await unfinishedAfter(clients.redis, 500, cursor, 2);
    pages.push(page.map((entry) => entry.taskId));
    if (page.length < 2) break;
    cursor = page.at(-1);
  }
  expect(pages.flat()).toEqual(["early", ...[...tied].sort(), "late"]);
  expect(pages[1]).toEqual(["t-b", "t-c"]); // from a cursor among the ties
  // From a cursor inside the ties, in one read: what follows it only.
  expect((await unfinishedAfter(clients.redis, 500, { scoreMs: 200, taskId: "t-c" }, 10)).map((e) => e.taskId)).toEqual(
    ["t-d", "t-e", "late"],
  );
});
