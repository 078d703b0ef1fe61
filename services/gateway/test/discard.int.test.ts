/**
 * DiscardDeadLetters against a real nats-server and redis-server, with the gateway in this process: letters removed
 * by id or by filter, each with its audit event; what is not there reported; a replay and a discard of one letter at
 * once, one of them done; an outage mid-call reported per letter.
 */
import { Code } from "@connectrpc/connect";
import { type AuditEvent, Subjects } from "@tm/flow";
import { DiscardResult, ReplayResult } from "@tm/proto";
import { appendDeadLetter, applyStatus, Keys, readStatus, type StoredDeadLetter, saveTask } from "@tm/store";
import { useInfra, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { event, useGateway } from "./helpers.js";

const infra = useInfra();
let nc: NatsConnection;
let redis: Redis;
const audits: AuditEvent[] = [];

beforeAll(async () => {
  nc = await connect({ servers: infra.nats.url });
  const sub = nc.subscribe(Subjects.audit);
  void (async () => {
    for await (const msg of sub) audits.push(msg.json<AuditEvent>());
  })();
  await nc.flush();
  redis = new Redis(infra.redis.url);
});
afterAll(async () => {
  await nc?.drain();
  redis?.disconnect();
});

const g = useGateway(infra);

/** A FAILED task and its dead letter. */
async function deadLettered(reason: "exhausted" | "rejected" = "exhausted"): Promise<StoredDeadLetter> {
  const taskId = crypto.randomUUID();
  await saveTask(redis, {
    taskId,
    type: "echo",
    priority: "low",
    payload: {},
    metadata: {},
    createdAt: new Date().toISOString(),
    generation: 0,
  });
  await applyStatus(redis, event({ taskId, state: "FAILED", generation: 0, error: "gave up" }));
  const letter: StoredDeadLetter = {
    id: `TASKS:${crypto.randomUUID()}`,
    taskId,
    subject: Subjects.workerLow,
    consumer: "worker",
    reason,
    error: "gave up",
    attempts: 5,
    at: new Date().toISOString(),
    message: { taskId, generation: 0 },
  };
  await appendDeadLetter(redis, letter);
  return letter;
}

const listedIds = async () => (await redis.lrange(Keys.deadLetter, 0, -1)).map((raw) => JSON.parse(raw).id as string);

test("a letter discarded by id leaves the list, its task stays FAILED, and its history records who and what", async () => {
  const letter = await deadLettered();
  const { outcomes, more } = await g.admin.discardDeadLetters({ ids: [letter.id] });
  expect(more).toBe(false);
  expect(outcomes.map((o) => [o.id, DiscardResult[o.result], o.taskId, o.reason])).toEqual([
    [letter.id, "DISCARDED", letter.taskId, ""],
  ]);
  expect(await listedIds()).not.toContain(letter.id);
  expect(await readStatus(redis, letter.taskId!)).toMatchObject({ state: "FAILED" });
  await waitFor("the dead_letter_discarded audit event", () =>
    audits.some((a) => a.taskId === letter.taskId && a.action === "dead_letter_discarded"),
  );
  expect(audits.find((a) => a.taskId === letter.taskId)).toMatchObject({
    service: "gateway",
    detail: { deadLetterId: letter.id, subject: Subjects.workerLow, reason: "exhausted" },
  });
  // Gone for a second discard and for a replay.
  const again = await g.admin.discardDeadLetters({ ids: [letter.id, "TASKS:nope"] });
  expect(again.outcomes.map((o) => [DiscardResult[o.result], o.reason])).toEqual([
    ["NOT_FOUND", "no dead letter with this id"],
    ["NOT_FOUND", "no dead letter with this id"],
  ]);
  const replay = await g.admin.replayDeadLetters({ ids: [letter.id] });
  expect(ReplayResult[replay.outcomes[0]!.result]).toBe("NOT_FOUND");
});

test("all with a filter discards the matching letters only", async () => {
  await redis.del(Keys.deadLetter);
  const [rejected, exhausted] = [await deadLettered("rejected"), await deadLettered("exhausted")];
  const { outcomes } = await g.admin.discardDeadLetters({ all: true, filter: { reason: "rejected" } });
  expect(outcomes.map((o) => [o.id, DiscardResult[o.result]])).toEqual([[rejected.id, "DISCARDED"]]);
  expect(await listedIds()).toEqual([exhausted.id]);
});

test("a replay and a discard of one letter at once: exactly one of them happens", async () => {
  const letter = await deadLettered();
  const [replay, discard] = await Promise.all([
    g.admin.replayDeadLetters({ ids: [letter.id] }),
    g.admin.discardDeadLetters({ ids: [letter.id] }),
  ]);
  const replayed = replay.outcomes[0]!.result === ReplayResult.REPLAYED;
  const discarded = discard.outcomes[0]!.result === DiscardResult.DISCARDED;
  expect([replayed, discarded].filter(Boolean)).toHaveLength(1);
  expect(await listedIds()).not.toContain(letter.id);
  expect(await redis.hget(Keys.task(letter.taskId!), "generation")).toBe(replayed ? "1" : "0");
});

test("ids and all together, or neither, are INVALID_ARGUMENT naming ids", async () => {
  const both = await g.admin.discardDeadLetters({ ids: ["TASKS:1"], all: true }).catch((error: unknown) => error);
  expect(both).toMatchObject({ code: Code.InvalidArgument, rawMessage: "ids: give either ids or all, not both" });
  await expect(g.admin.discardDeadLetters({})).rejects.toMatchObject({
    code: Code.InvalidArgument,
    rawMessage: "ids: give the dead letter ids to discard, or all",
  });
});

test("Redis failing at the second letter: the first discarded, the second and third UNAVAILABLE and still listed", async () => {
  const letters = [await deadLettered(), await deadLettered(), await deadLettered()];
  const rtRedis = g.gateway.runtime.redis;
  const realLrem = rtRedis.lrem.bind(rtRedis);
  // The gateway's own connection, refusing the removal of the second letter as a Redis gone would.
  rtRedis.lrem = ((key: string, count: number, raw: string) =>
    raw.includes(letters[1]!.id)
      ? Promise.reject(new Error("Connection is closed."))
      : realLrem(key, count, raw)) as typeof rtRedis.lrem;
  try {
    const { outcomes } = await g.admin.discardDeadLetters({ ids: letters.map((l) => l.id) });
    expect(outcomes.map((o) => [o.id, DiscardResult[o.result]])).toEqual([
      [letters[0]!.id, "DISCARDED"],
      [letters[1]!.id, "UNAVAILABLE"],
      [letters[2]!.id, "UNAVAILABLE"],
    ]);
    expect(outcomes[1]!.reason).toBe("Redis unavailable while discarding the dead letter: Connection is closed.");
    expect(outcomes[2]!.reason).toBe(
      `not attempted: Redis unavailable while discarding the dead letter: Connection is closed. (at dead letter ${letters[1]!.id}); call again`,
    );
  } finally {
    rtRedis.lrem = realLrem as typeof rtRedis.lrem;
  }
  const listed = await listedIds();
  expect(listed).not.toContain(letters[0]!.id);
  expect(listed).toEqual(expect.arrayContaining([letters[1]!.id, letters[2]!.id]));
});
