/**
 * Load under crashes: LOAD_TASKS tasks (default 1000; the documented full run is 20000) of mixed types go through
 * the whole pipeline with two worker processes while a random worker is SIGKILLed every few seconds and restarted.
 * At the end every task is in a terminal state and every SUCCEEDED task has exactly one stored result (and the
 * result-store recorded storing it exactly once). Prints the figures (tasks, kills, duration, throughput).
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { JsonObject } from "@bufbuild/protobuf";
import { waitFor } from "@tm/testkit";
import { connect, type JetStreamManager, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type Pipeline, startPipeline } from "../support/pipeline.js";
import { problemsOf, readOutcomes, streamsDrained, TERMINAL_STATES, unfinished } from "./support/outcomes.js";

const TASKS = Number(process.env.LOAD_TASKS ?? 1000);
const KILL_EVERY_MS = Number(process.env.LOAD_KILL_EVERY_MS ?? 3000);
const SUBMITTERS = 32;
const WORKERS = ["worker", "worker-2"] as const;

let pipeline: Pipeline;
let nc: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  // The workers are SIGKILLed: their own processes; the stages they feed share one.
  pipeline = await startPipeline({ ownProcess: ["worker"], perService: { worker: { WORKER_CONCURRENCY: "16" } } });
  await pipeline.spawn("worker", {}, "worker-2");
  nc = await connect({ servers: pipeline.nats.url });
  jsm = await nc.jetstreamManager();
}, 120_000);
afterAll(async () => {
  await nc?.close();
  await pipeline?.dispose();
});

/** Mostly echo, and some of every other succeeding type (flaky fails once, then succeeds). */
function taskFor(i: number): { type: string; payload: JsonObject } {
  switch (i % 20) {
    case 0:
      return { type: "sleep", payload: { ms: 20 + (i % 5) * 20 } };
    case 1:
      return { type: "checksum", payload: { data: `load-${i}`, rounds: 3 } };
    case 2:
      return { type: "flaky", payload: { failures: 1 } };
    default:
      return { type: "echo", payload: { i } };
  }
}

describe("load with worker crashes", () => {
  test(
    `${TASKS} mixed tasks, a worker SIGKILLed every ${KILL_EVERY_MS} ms: all finish, one result each`,
    async () => {
      const started = Date.now();
      const taskIds: string[] = [];
      const types = new Map<string, string>();
      let submitErrors = 0;
      let next = 0;
      const submitter = async () => {
        while (next < TASKS) {
          const i = next++;
          const task = taskFor(i);
          for (;;) {
            try {
              // Same idempotency key on a retry, so an ambiguous failure cannot create the task twice.
              const { taskId } = await pipeline.client.submitTask({ ...task, idempotencyKey: `load-${i}` });
              taskIds.push(taskId);
              types.set(taskId, task.type);
              break;
            } catch {
              submitErrors++;
              await sleep(200);
            }
          }
        }
      };

      // The crash loop: real time between kills is the property under test (load keeps running across crashes).
      let kills = 0;
      let chaos = true;
      const crashLoop = (async () => {
        // The first crash once a tenth of the tasks is in, so even a small run sees one mid-load.
        await waitFor("a tenth of the tasks submitted", () => taskIds.length >= TASKS / 10, {
          timeoutMs: 120_000,
          intervalMs: 20,
        });
        while (chaos) {
          const victim = pipeline.services.get(WORKERS[Math.floor(Math.random() * WORKERS.length)]!)!;
          await victim.process.kill();
          kills++;
          victim.process.start();
          await victim.ready(60_000);
          await sleep(KILL_EVERY_MS);
        }
      })();

      try {
        await Promise.all(Array.from({ length: SUBMITTERS }, submitter));
        const submittedAt = Date.now();
        let remaining = [...taskIds];
        await waitFor(
          "every task in a terminal state",
          async () => {
            remaining = await unfinished(pipeline.redisClient, remaining);
            return remaining.length === 0;
          },
          { timeoutMs: Math.max(120_000, TASKS * 60), intervalMs: 1_000 },
        );
        const finishedAt = Date.now();
        chaos = false;
        await crashLoop;
        for (const name of WORKERS) expect(pipeline.services.get(name)!.process.running, name).toBe(true);
        await waitFor("every result and audit event handled", () => streamsDrained(jsm), {
          timeoutMs: 60_000,
          intervalMs: 500,
        });

        expect(new Set(taskIds).size).toBe(TASKS);
        const outcomes = await readOutcomes(pipeline.redisClient, taskIds);
        const byState: Record<string, number> = {};
        for (const o of outcomes) byState[o.state ?? "none"] = (byState[o.state ?? "none"] ?? 0) + 1;
        const notSucceeded = outcomes.filter((o) => o.state !== "SUCCEEDED").map((o) => `${types.get(o.taskId)}`);
        const seconds = (finishedAt - started) / 1000;
        console.log(
          `[load] ${JSON.stringify({
            tasks: TASKS,
            kills,
            killEveryMs: KILL_EVERY_MS,
            submitSeconds: (submittedAt - started) / 1000,
            totalSeconds: seconds,
            tasksPerSecond: Math.round(TASKS / seconds),
            submitErrors,
            byState,
            notSucceededTypes: notSucceeded.slice(0, 20),
          })}`,
        );
        expect(outcomes.every((o) => TERMINAL_STATES.has(o.state ?? ""))).toBe(true);
        // Terminal, and a result exactly once for each success (none for anything else).
        expect(problemsOf(outcomes, () => false)).toEqual([]);
        expect(kills).toBeGreaterThan(0);
      } finally {
        chaos = false;
        await crashLoop;
      }
    },
    Math.max(300_000, TASKS * 100),
  );
});
