/**
 * Idempotency keys against a real redis-server: the first claim holds the task id; saving the task's record with the
 * claim marks the key "saved" (keeping its TTL), so a later repeat can tell records that expired from a submission
 * interrupted before it saved them; a refused save (a dependency already FAILED) marks nothing.
 */
import { StatusEventSchema, statusEvent } from "@tm/flow";
import { useClients, useInfra } from "@tm/testkit";
import { beforeEach, expect, test } from "vitest";
import { applyStatus, claimIdempotencyKey, Keys, saveTask } from "../src/index.js";

const clients = useClients(useInfra());
beforeEach(async () => {
  await clients.redis.flushdb();
});

const task = (taskId: string, dependsOn?: string[]) => ({
  taskId,
  type: "echo",
  priority: "low" as const,
  payload: {},
  metadata: {},
  createdAt: new Date().toISOString(),
  generation: 0,
  ...(dependsOn ? { dependsOn } : {}),
});

test("a claim holds the id; the claimed task's saved record marks it, its TTL kept; a repeat reads the mark", async () => {
  expect(await claimIdempotencyKey(clients.redis, "k", "t1", 3_600)).toEqual({
    owner: "t1",
    claimed: true,
    saved: false,
  });
  expect(await claimIdempotencyKey(clients.redis, "k", "t2", 3_600)).toEqual({
    owner: "t1",
    claimed: false,
    saved: false,
  });
  await saveTask(clients.redis, task("t1"), { unqueued: true, idempotencyClaim: "k" });
  expect(await clients.redis.get(Keys.idempotency("k"))).toBe("t1 saved");
  const ttl = await clients.redis.ttl(Keys.idempotency("k"));
  expect(ttl).toBeGreaterThan(3_500);
  expect(ttl).toBeLessThanOrEqual(3_600);
  expect(await claimIdempotencyKey(clients.redis, "k", "t3", 3_600)).toEqual({
    owner: "t1",
    claimed: false,
    saved: true,
  });
  // Saved again (a retry resuming it): the mark stays as it is.
  await saveTask(clients.redis, task("t1"), { unqueued: true, idempotencyClaim: "k" });
  expect(await clients.redis.get(Keys.idempotency("k"))).toBe("t1 saved");
});

test("only the claim's own task marks it; a save without a claim, or refused, marks nothing", async () => {
  await claimIdempotencyKey(clients.redis, "mine", "t1", 60);
  await saveTask(clients.redis, task("t2"), { idempotencyClaim: "mine" });
  await saveTask(clients.redis, task("t1"));
  expect(await clients.redis.get(Keys.idempotency("mine"))).toBe("t1");
  // A dependency already FAILED: the save is refused, nothing written, the key unmarked.
  const dep = crypto.randomUUID();
  await saveTask(clients.redis, task(dep));
  await applyStatus(
    clients.redis,
    StatusEventSchema.parse(statusEvent({ taskId: dep, state: "FAILED", source: "test" })),
  );
  await claimIdempotencyKey(clients.redis, "waits", "t4", 60);
  const saved = await saveTask(clients.redis, task("t4", [dep]), { idempotencyClaim: "waits" });
  expect(saved).toMatchObject({ refusedBy: { dependency: dep, state: "FAILED" } });
  expect(await clients.redis.get(Keys.idempotency("waits"))).toBe("t4");
  // With dependencies accepted, the record is saved and the key marked.
  const ok = crypto.randomUUID();
  await saveTask(clients.redis, task(ok));
  await claimIdempotencyKey(clients.redis, "after", "t5", 60);
  expect(await saveTask(clients.redis, task("t5", [ok]), { idempotencyClaim: "after" })).toEqual({ waitingFor: 1 });
  expect(await clients.redis.get(Keys.idempotency("after"))).toBe("t5 saved");
});
