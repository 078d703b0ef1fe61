/**
 * Operators' run-time limits per task type (type_limits) against a real redis-server: set, replaced, read back by
 * type, cleared; a malformed field is left out rather than applied. And the count of fleet-wide slots held.
 */
import { useClients, useInfra, waitFor } from "@tm/testkit";
import { beforeEach, expect, test } from "vitest";
import {
  clearTypeLimit,
  countTypeSlots,
  Keys,
  readTypeLimits,
  setTypeLimit,
  setTypePaused,
  takeTypeSlot,
} from "../src/index.js";

const clients = useClients(useInfra());
beforeEach(async () => {
  await clients.redis.flushdb();
});

test("a type's limits are set, replaced (answering the previous ones), read back sorted, and cleared", async () => {
  const first = { type: "sleep", globalConcurrency: 2, at: "2026-12-06T00:00:00.000Z", by: "ops" };
  expect(await setTypeLimit(clients.redis, first)).toEqual({ previous: undefined, limit: first });
  const replaced = { type: "sleep", rate: { perSecond: 0.5, burst: 3 }, at: "2026-12-06T00:01:00.000Z", by: "ops" };
  expect(await setTypeLimit(clients.redis, replaced)).toEqual({ previous: first, limit: replaced });
  await setTypeLimit(clients.redis, { type: "echo", globalConcurrency: 10, at: "2026-12-06T00:02:00.000Z", by: "" });
  expect(await readTypeLimits(clients.redis)).toEqual([
    { type: "echo", globalConcurrency: 10, at: "2026-12-06T00:02:00.000Z", by: "" },
    replaced,
  ]);
  expect(await clearTypeLimit(clients.redis, "sleep")).toBe(true);
  expect(await clearTypeLimit(clients.redis, "sleep")).toBe(false);
  expect((await readTypeLimits(clients.redis)).map((limit) => limit.type)).toEqual(["echo"]);
  // A pause alone is a limit of its own.
  const paused = { type: "flaky", paused: true, at: "2026-12-06T00:03:00.000Z", by: "ops" };
  await setTypeLimit(clients.redis, paused);
  expect((await readTypeLimits(clients.redis)).find((limit) => limit.type === "flaky")).toEqual(paused);
});

test("with keepPause a type's limits are replaced and its pause stays as it was, paused or not", async () => {
  const at = "2026-12-06T00:00:00.000Z";
  await setTypeLimit(clients.redis, { type: "sleep", globalConcurrency: 2, paused: true, at, by: "ops" });
  // A concurrency changed during the pause, the request saying nothing of it (or the opposite): still paused.
  const changed = { type: "sleep", globalConcurrency: 5, rate: { perSecond: 0.1, burst: 2 }, at, by: "bob" };
  expect((await setTypeLimit(clients.redis, changed, { keepPause: true })).limit).toEqual({ ...changed, paused: true });
  expect(await readTypeLimits(clients.redis)).toEqual([{ ...changed, paused: true }]);
  // Not paused before: not paused after, whatever the record says.
  await setTypePaused(clients.redis, "sleep", false, at, "bob");
  const asked = { type: "sleep", globalConcurrency: 3, paused: true, at, by: "bob" };
  expect((await setTypeLimit(clients.redis, asked, { keepPause: true })).limit).toEqual({
    type: "sleep",
    globalConcurrency: 3,
    at,
    by: "bob",
  });
  // A new type keeps no pause either; without keepPause the record's pause is written.
  expect(
    (await setTypeLimit(clients.redis, { ...asked, type: "echo" }, { keepPause: true })).limit.paused,
  ).toBeUndefined();
  expect((await setTypeLimit(clients.redis, { ...asked, type: "flaky" })).limit.paused).toBe(true);
});

test("a pause set and lifted on its own keeps the type's other limits; lifted with none left, the entry goes", async () => {
  const limits = { type: "sleep", globalConcurrency: 2, rate: { perSecond: 0.1, burst: 3 }, at: "t0", by: "ops" };
  await setTypeLimit(clients.redis, limits);
  expect(await setTypePaused(clients.redis, "sleep", true, "t1", "alice")).toEqual({
    wasPaused: false,
    limit: { ...limits, paused: true, at: "t1", by: "alice" },
  });
  // Again: nothing changes, not even who set it.
  expect(await setTypePaused(clients.redis, "sleep", true, "t2", "bob")).toEqual({
    wasPaused: true,
    limit: { ...limits, paused: true, at: "t1", by: "alice" },
  });
  expect(await setTypePaused(clients.redis, "sleep", false, "t3", "bob")).toEqual({
    wasPaused: true,
    limit: { ...limits, at: "t3", by: "bob" },
  });
  expect(await readTypeLimits(clients.redis)).toEqual([{ ...limits, at: "t3", by: "bob" }]);
  expect(await setTypePaused(clients.redis, "sleep", false, "t4", "bob")).toEqual({
    wasPaused: false,
    limit: { ...limits, at: "t3", by: "bob" },
  });
  // A type with no other limit: the pause alone is its entry, and lifting it removes the entry.
  expect(await setTypePaused(clients.redis, "echo", true, "t5", "")).toEqual({
    wasPaused: false,
    limit: { type: "echo", paused: true, at: "t5", by: "" },
  });
  expect(await setTypePaused(clients.redis, "echo", false, "t6", "")).toEqual({ wasPaused: true, limit: undefined });
  expect(await clients.redis.hexists(Keys.typeLimits, "echo")).toBe(0);
  expect(await setTypePaused(clients.redis, "echo", false, "t7", "")).toEqual({ wasPaused: false, limit: undefined });
  // An entry that is not JSON (written by hand) is replaced by the pause.
  await clients.redis.hset(Keys.typeLimits, "flaky", "not json");
  expect((await setTypePaused(clients.redis, "flaky", true, "t8", "ops")).limit).toEqual({
    type: "flaky",
    paused: true,
    at: "t8",
    by: "ops",
  });
});

test("a field that is not a well-formed record (written by hand) is left out, not applied", async () => {
  await clients.redis.hset(Keys.typeLimits, {
    echo: "not json",
    sleep: JSON.stringify({ globalConcurrency: 0 }),
    flaky: JSON.stringify({ rate: { perSecond: -1, burst: 1 } }),
    checksum: JSON.stringify({ globalConcurrency: 3 }),
    fail: JSON.stringify({ paused: "yes" }),
  });
  expect(await readTypeLimits(clients.redis)).toEqual([{ type: "checksum", globalConcurrency: 3, at: "", by: "" }]);
});

test("countTypeSlots counts the leases that have not run out", async () => {
  expect(await countTypeSlots(clients.redis, "sleep")).toBe(0);
  await takeTypeSlot(clients.redis, "sleep", "a", 5, 30_000);
  await takeTypeSlot(clients.redis, "sleep", "b", 5, 100);
  expect(await countTypeSlots(clients.redis, "sleep")).toBe(2);
  await waitFor("the short lease to run out", async () => (await countTypeSlots(clients.redis, "sleep")) === 1);
});
