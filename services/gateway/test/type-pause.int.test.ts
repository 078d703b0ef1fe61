/**
 * AdminService PauseType / ResumeType against a real nats-server and redis-server: the pause alone is set and lifted,
 * the type's other run-time limits kept (SetTypeLimit would replace them); a repeated call changes nothing; each change
 * is audited once; an unknown type is INVALID_ARGUMENT naming it.
 */
import { Code } from "@connectrpc/connect";
import { Keys } from "@tm/store";
import { useClients, useInfra } from "@tm/testkit";
import { expect, test } from "vitest";
import { auditActionsOf, rejection, useGateway } from "./helpers.js";

const infra = useInfra();
const clients = useClients(infra);
const g = useGateway(infra);

/** The type_paused / type_resumed audit events of a type, oldest first. */
const pauseAudits = (type: string) =>
  auditActionsOf(clients.nc, (event) => event.detail?.type === type && event.action.startsWith("type_"));

test("a type's pause is set and lifted on its own: its other limits stay; repeated calls change nothing", async () => {
  await g.admin.setTypeLimit({ limit: { type: "sleep", globalConcurrency: 3, ratePerSecond: 2, rateBurst: 4 } });
  const paused = await g.admin.pauseType({ type: "sleep" });
  expect(paused.wasPaused).toBe(false);
  expect(paused.limit).toMatchObject({
    type: "sleep",
    globalConcurrency: 3,
    ratePerSecond: 2,
    rateBurst: 4,
    paused: true,
  });
  expect((await g.admin.pauseType({ type: "sleep" })).wasPaused).toBe(true);
  const listed = (await g.admin.listTypeLimits({})).limits.find((limit) => limit.type === "sleep");
  expect(listed).toMatchObject({ globalConcurrency: 3, ratePerSecond: 2, paused: true });

  const resumed = await g.admin.resumeType({ type: "sleep" });
  expect(resumed.wasPaused).toBe(true);
  expect(resumed.limit).toMatchObject({ type: "sleep", globalConcurrency: 3, ratePerSecond: 2, paused: false });
  expect((await g.admin.resumeType({ type: "sleep" })).wasPaused).toBe(false);
  // Each change audited once (the set, the pause, the resume), the repeats not.
  expect((await pauseAudits("sleep")).filter((a) => a !== "type_limit_set")).toEqual(["type_paused", "type_resumed"]);
});

test("a type paused with no other limit: resuming it leaves no entry", async () => {
  expect((await g.admin.pauseType({ type: "checksum" })).limit).toMatchObject({ type: "checksum", paused: true });
  const resumed = await g.admin.resumeType({ type: "checksum" });
  expect(resumed).toMatchObject({ wasPaused: true });
  expect(resumed.limit).toBeUndefined();
  expect(await clients.redis.hexists(Keys.typeLimits, "checksum")).toBe(0);
});

test("an unknown or missing type is INVALID_ARGUMENT naming it", async () => {
  const unknown = await rejection(g.admin.pauseType({ type: "nope" }));
  expect(unknown.code).toBe(Code.InvalidArgument);
  expect(unknown.rawMessage).toMatch(/^type: unknown task type "nope" \(known: /);
  const missing = await rejection(g.admin.resumeType({ type: "" }));
  expect(missing.code).toBe(Code.InvalidArgument);
  expect(missing.rawMessage).toMatch(/^type: is required/);
});

test("SetTypeLimit with keep_pause changes a paused type's limits and keeps it paused; with nothing else to set it is refused", async () => {
  await g.admin.pauseType({ type: "fail" });
  const set = await g.admin.setTypeLimit({
    limit: { type: "fail", globalConcurrency: 3, paused: false },
    keepPause: true,
  });
  expect(set.limit).toMatchObject({ type: "fail", globalConcurrency: 3, paused: true });
  expect(set.previous).toMatchObject({ type: "fail", paused: true });
  const listed = (await g.admin.listTypeLimits({})).limits.find((limit) => limit.type === "fail");
  expect(listed).toMatchObject({ globalConcurrency: 3, paused: true });
  // Without it, the request's own pause is written (SetTypeLimit replaces everything).
  expect((await g.admin.setTypeLimit({ limit: { type: "fail", globalConcurrency: 4 } })).limit?.paused).toBe(false);
  const nothing = await rejection(g.admin.setTypeLimit({ limit: { type: "fail", paused: true }, keepPause: true }));
  expect(nothing.code).toBe(Code.InvalidArgument);
  expect(nothing.rawMessage).toMatch(/^limit: sets neither global_concurrency nor rate_per_second, and keep_pause/);
  await g.admin.clearTypeLimit({ type: "fail" });
});
