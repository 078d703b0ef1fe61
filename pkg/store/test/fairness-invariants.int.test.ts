/**
 * Fairness keys under random sequences of submissions (keys, weights, priorities, some with a concurrency key too),
 * ends and cancels, against a real redis-server (fast-check, model-based): after every step the window holds at most
 * its size; no task is lost (each unfinished one holds a place or waits in exactly one line, a finished one in
 * neither); the queue of keys is exactly the keys with tasks waiting, and the every-type count exactly the tasks in
 * the lines; and the window is never left with room while tasks wait (a waiting task is let in as soon as a place
 * frees). And two keys that both keep tasks waiting share the turns by their weights within start-time fair
 * queueing's bound. FAIRNESS_RUNS scales the number of runs.
 */
import type { TaskState } from "@tm/flow";
import { useClients, useInfra } from "@tm/testkit";
import fc from "fast-check";
import { expect, test } from "vitest";
import { applyStatus, Keys, releaseDue, saveTask } from "../src/index.js";
import { statusOf } from "./named-tasks.js";

const clients = useClients(useInfra());
const RUNS = Number(process.env.FAIRNESS_RUNS ?? 200);
const TYPE = "echo";
const KEYS = ["a", "b", "c", "d"];

type Step =
  | {
      kind: "submit";
      key: string;
      weight: number;
      priority: "high" | "medium" | "low";
      concurrency: boolean;
    }
  | { kind: "end"; pick: number; state: TaskState }
  | { kind: "cancel"; pick: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("submit" as const),
      key: fc.constantFrom(...KEYS),
      weight: fc.integer({ min: 1, max: 4 }),
      priority: fc.constantFrom("high" as const, "medium" as const, "low" as const),
      concurrency: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("end" as const),
      pick: fc.nat(),
      state: fc.constantFrom<TaskState>("SUCCEEDED", "FAILED"),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("cancel" as const), pick: fc.nat() }) },
);

async function checkInvariants(window: number, open: Set<string>, finished: Set<string>): Promise<void> {
  const redis = clients.redis;
  const running = new Set(await redis.zrange(Keys.fairnessRunning(TYPE), 0, -1));
  expect(running.size, "the window holds at most its size").toBeLessThanOrEqual(window);
  const lines = new Map<string, string[]>();
  for (const key of KEYS) lines.set(key, await redis.zrange(Keys.fairnessWaiting(TYPE, key), 0, -1));
  const waiting = [...lines.values()].flat();
  // A task with a concurrency key may wait for that key's place before its turn: in neither set, in the key's line.
  const concurrencyWaiting = new Set(await redis.zrange(Keys.concurrencyWaiting("acct"), 0, -1));
  for (const id of open) {
    const places =
      Number(running.has(id)) + waiting.filter((w) => w === id).length + Number(concurrencyWaiting.has(id));
    expect(places, `unfinished task ${id}: exactly one place or line`).toBe(1);
  }
  for (const id of finished) {
    expect(running.has(id) || waiting.includes(id), `finished task ${id} in no set`).toBe(false);
  }
  const keysWaiting = (await redis.zrange(Keys.fairnessKeys(TYPE), 0, -1)).sort();
  expect(keysWaiting, "the queue of keys is the keys with tasks waiting").toEqual(
    [...lines].filter(([, line]) => line.length > 0).map(([key]) => key),
  );
  expect((await redis.zrange(Keys.fairnessWaitingAll, 0, -1)).sort()).toEqual([...waiting].sort());
  if (waiting.length > 0) expect(running.size, "no room left while tasks wait").toBe(window);
}

test("random submissions, ends and cancels keep the window's invariants", async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.array(step, { maxLength: 40 }), async (window, steps) => {
      await clients.redis.flushdb();
      const open = new Set<string>();
      const finished = new Set<string>();
      let n = 0;
      for (const s of steps) {
        if (s.kind === "submit") {
          const taskId = crypto.randomUUID();
          await saveTask(
            clients.redis,
            {
              taskId,
              type: TYPE,
              priority: s.priority,
              payload: {},
              metadata: {},
              createdAt: new Date(Date.now() - 60_000 + n++).toISOString(),
              generation: 0,
              fairnessKey: s.key,
              fairnessWeight: s.weight,
              fairnessWindow: window,
              ...(s.concurrency ? { concurrencyKey: "acct", concurrencyLimit: 2 } : {}),
            },
            { unqueued: true },
          );
          open.add(taskId);
        } else {
          // An end comes only to a task in the pipeline (one holding a place); a cancel to any unfinished one.
          const candidates =
            s.kind === "end" ? await clients.redis.zrange(Keys.fairnessRunning(TYPE), 0, -1) : [...open];
          if (candidates.length === 0) continue;
          const taskId = candidates[s.pick % candidates.length]!;
          const state = s.kind === "end" ? s.state : "CANCELLED";
          expect(await applyStatus(clients.redis, statusOf(taskId, state))).toBe(true);
          open.delete(taskId);
          finished.add(taskId);
        }
        // The gateway's releaser, woken at once: a task whose concurrency place freed is due, then let in or in line.
        await releaseDue(clients.redis, Date.now(), 100);
        await checkInvariants(window, open, finished);
      }
    }),
    { numRuns: RUNS },
  );
});

test("two backlogged keys share the turns by weight, within one turn each (start-time fair queueing's bound)", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 8 }),
      fc.integer({ min: 1, max: 8 }),
      fc.integer({ min: 5, max: 60 }),
      async (weightA, weightB, turns) => {
        await clients.redis.flushdb();
        const keyOf = new Map<string, string>();
        let n = 0;
        const submit = async (key: string, weight: number) => {
          const taskId = crypto.randomUUID();
          keyOf.set(taskId, key);
          await saveTask(
            clients.redis,
            {
              taskId,
              type: TYPE,
              priority: "medium",
              payload: {},
              metadata: {},
              createdAt: new Date(Date.now() - 60_000 + n++).toISOString(),
              generation: 0,
              fairnessKey: key,
              fairnessWeight: weight,
              fairnessWindow: 1,
            },
            { unqueued: true },
          );
        };
        // A third key holds the window while both backlogs form, so both start level.
        await submit("holder", 1);
        for (let i = 0; i < turns; i++) {
          await submit("a", weightA);
          await submit("b", weightB);
        }
        const served = { a: 0, b: 0 } as Record<string, number>;
        for (let turn = 0; turn < turns; turn++) {
          const [inWindow] = await clients.redis.zrange(Keys.fairnessRunning(TYPE), 0, 0);
          expect(await applyStatus(clients.redis, statusOf(inWindow!, "SUCCEEDED"))).toBe(true);
          const [next] = await clients.redis.zrange(Keys.fairnessRunning(TYPE), 0, 0);
          const key = keyOf.get(next!)!;
          served[key] = (served[key] ?? 0) + 1;
          const gap = Math.abs(served.a! / weightA - served.b! / weightB);
          expect(gap, `after ${turn + 1} turns: a ${served.a}, b ${served.b}`).toBeLessThanOrEqual(
            1 / weightA + 1 / weightB + 1e-9,
          );
        }
      },
    ),
    { numRuns: Math.max(20, Math.round(RUNS / 4)) },
  );
});
