/**
 * task_logs:<id> against a real redis-server: lines appended in order, numbered, and read back page by page from a cursor, the
 * newest kept past the cap with the dropped ones counted, the key living the task's retention; an unknown task's
 * log is empty; an entry not written by a worker is shown as its text; a malformed cursor is refused.
 */
import { useClients, useInfra } from "@tm/testkit";
import { beforeEach, expect, test } from "vitest";
import { appendTaskLog, countTaskLog, Keys, readTaskLog } from "../src/index.js";
import { logEntry as line } from "./task-log-entries.js";

const clients = useClients(useInfra());
beforeEach(async () => {
  await clients.redis.flushdb();
});

test("lines are read back in order, page by page from the last line's id, with their fields", async () => {
  const taskId = crypto.randomUUID();
  await appendTaskLog(
    clients.redis,
    taskId,
    [line(1, { fields: { part: 7, of: 12 } }), line(2, { level: "warn" }), line(3, { attempt: 2 })],
    { maxLines: 100, ttlSeconds: 600 },
  );
  const first = await readTaskLog(clients.redis, taskId, { limit: 2 });
  expect(first.lines.map(({ id: _id, ...rest }) => rest)).toEqual([
    line(1, { fields: { part: 7, of: 12 } }),
    line(2, { level: "warn" }),
  ]);
  expect(first).toMatchObject({ total: 3, dropped: 0, nextCursor: "2" });
  expect(first.lines.map((l) => l.id)).toEqual(["1", "2"]);
  const second = await readTaskLog(clients.redis, taskId, { after: first.nextCursor, limit: 2 });
  expect(second.lines.map((l) => l.message)).toEqual(["line 3"]);
  expect(second.lines[0]?.attempt).toBe(2);
  // Nothing new: the cursor stays where it was, for the next poll.
  const third = await readTaskLog(clients.redis, taskId, { after: second.nextCursor, limit: 2 });
  expect(third).toEqual({ lines: [], nextCursor: second.nextCursor, total: 3, dropped: 0 });
  // An append after the reader caught up is what it reads next.
  await appendTaskLog(clients.redis, taskId, [line(4)], { maxLines: 100, ttlSeconds: 600 });
  expect(
    (await readTaskLog(clients.redis, taskId, { after: third.nextCursor, limit: 10 })).lines.map((l) => l.message),
  ).toEqual(["line 4"]);
});

test("past the cap the newest lines are kept and the dropped ones counted; the key lives the retention given", async () => {
  const taskId = crypto.randomUUID();
  const options = { maxLines: 3, ttlSeconds: 120 };
  await appendTaskLog(clients.redis, taskId, [line(1), line(2)], options);
  await appendTaskLog(clients.redis, taskId, [line(3), line(4), line(5)], options);
  const page = await readTaskLog(clients.redis, taskId, { limit: 10 });
  expect(page.lines.map((l) => l.message)).toEqual(["line 3", "line 4", "line 5"]);
  expect(page).toMatchObject({ total: 5, dropped: 2 });
  expect(await countTaskLog(clients.redis, taskId)).toBe(5);
  expect(await countTaskLog(clients.redis, crypto.randomUUID())).toBe(0);
  // The numbers stay the lines' own: a reader past line 3 reads on from there, one behind the trim from the oldest.
  expect((await readTaskLog(clients.redis, taskId, { after: "3", limit: 10 })).lines.map((l) => l.id)).toEqual([
    "4",
    "5",
  ]);
  expect((await readTaskLog(clients.redis, taskId, { after: "1", limit: 1 })).lines.map((l) => l.id)).toEqual(["3"]);
  const ttl = await clients.redis.ttl(Keys.logs(taskId));
  expect(ttl).toBeGreaterThan(100);
  expect(ttl).toBeLessThanOrEqual(120);
});

test("lines the writer left out (past its cap already) are numbered and counted as dropped", async () => {
  const taskId = crypto.randomUUID();
  await appendTaskLog(clients.redis, taskId, [line(1)], { maxLines: 3, ttlSeconds: 60 });
  await appendTaskLog(clients.redis, taskId, [line(9), line(10)], { maxLines: 3, ttlSeconds: 60, skipped: 7 });
  const page = await readTaskLog(clients.redis, taskId, { limit: 10 });
  expect(page.lines.map((l) => [l.id, l.message])).toEqual([
    ["1", "line 1"],
    ["9", "line 9"],
    ["10", "line 10"],
  ]);
  expect(page).toMatchObject({ total: 10, dropped: 0 });
});

test("no log: an empty page; a cap of 0 or no lines writes nothing", async () => {
  const taskId = crypto.randomUUID();
  expect(await readTaskLog(clients.redis, taskId, { limit: 10 })).toEqual({
    lines: [],
    nextCursor: "",
    total: 0,
    dropped: 0,
  });
  await appendTaskLog(clients.redis, taskId, [line(1)], { maxLines: 0, ttlSeconds: 60 });
  await appendTaskLog(clients.redis, taskId, [], { maxLines: 10, ttlSeconds: 60 });
  expect(await clients.redis.exists(Keys.logs(taskId))).toBe(0);
});

test("an entry not written by a worker is shown as its text; a malformed cursor is refused, naming it", async () => {
  const taskId = crypto.randomUUID();
  await clients.redis.rpush(Keys.logs(taskId), "1 not json at all", "no number");
  const page = await readTaskLog(clients.redis, taskId, { limit: 10 });
  expect(page.lines.map(({ id, level, message }) => ({ id, level, message }))).toEqual([
    { id: "1", level: "unknown", message: "not json at all" },
    { id: "", level: "unknown", message: "no number" },
  ]);
  expect(page.nextCursor).toBe("1");
  await expect(readTaskLog(clients.redis, taskId, { after: "12; DROP", limit: 1 })).rejects.toThrow(
    "not a task log cursor: 12; DROP",
  );
});
