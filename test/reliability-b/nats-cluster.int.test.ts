/**
 * A 3-node JetStream cluster with R3 streams: the pipeline runs against all three nodes while a few hundred tasks are
 * submitted over several seconds, and the TASKS stream leader is SIGKILLed in the middle. Nothing is lost (every
 * accepted task SUCCEEDED with exactly one stored result), the pipeline keeps going, and the failover is measured:
 * the longest gap between successive completions, and the submissions that failed (then retried) meanwhile.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { type NatsCluster, startNatsCluster, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { connect, type JetStreamManager, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type Pipeline, startPipeline } from "../support/pipeline.js";
import { problemsOf, readOutcomes, streamsDrained, stuckReport, unfinished } from "./support/outcomes.js";

const TASKS = Number(process.env.CLUSTER_TASKS ?? 300);
const SUBMIT_INTERVAL_MS = 25; // ~40 submissions a second: the load is spread over several seconds on purpose
const KILL_AFTER = Math.floor(TASKS / 3);

let cluster: NatsCluster;
let pipeline: Pipeline;
let nc: NatsConnection;
let jsm: JetStreamManager;
let subscriber: Redis;

beforeAll(async () => {
  cluster = await startNatsCluster(3);
  // startPipeline also starts a standalone nats-server; NATS_URL points every service at the cluster instead.
  // A NATS node is killed, no service: they all run in one combined process, each with its own connection.
  pipeline = await startPipeline({
    ownProcess: [],
    env: { NATS_URL: cluster.urls.join(","), NATS_STREAM_REPLICAS: "3" },
    perService: { worker: { WORKER_CONCURRENCY: "8" } },
  });
  nc = await connect({ servers: cluster.urls, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  jsm = await nc.jetstreamManager();
}, 120_000);
afterAll(async () => {
  subscriber?.disconnect();
  await nc?.close();
  await pipeline?.dispose();
  await cluster?.dispose();
});

describe("a 3-node NATS cluster with R3 streams", () => {
  test("the streams are provisioned with 3 replicas", async () => {
    for (const name of ["TASKS", "EVENTS"]) {
      const info = await jsm.streams.info(name);
      expect(info.config.num_replicas, name).toBe(3);
      expect(info.cluster?.leader, name).toMatch(/^n[0-2]$/);
      // The leader plus two followers, all current.
      expect(
        info.cluster?.replicas?.map((r) => r.current),
        name,
      ).toEqual([true, true]);
    }
  });

  test("losing the TASKS stream leader under load loses no task and duplicates no result", async () => {
    subscriber = new Redis(pipeline.redis.url);
    const completedAt = new Map<string, number>();
    await subscriber.psubscribe("task_status:*");
    subscriber.on("pmessage", (_pattern, _channel, text: string) => {
      const status = JSON.parse(text) as { taskId: string; state: string };
      if (status.state === "SUCCEEDED" && !completedAt.has(status.taskId)) completedAt.set(status.taskId, Date.now());
    });

    const taskIds: string[] = [];
    const submitErrors: string[] = [];
    let killedAt = 0;
    let killed = "";
    const submissions: Promise<void>[] = [];
    for (let i = 0; i < TASKS; i++) {
      submissions.push(
        (async () => {
          // A failed submission is retried with the same idempotency key, as a client would.
          for (;;) {
            try {
              const { taskId } = await pipeline.client.submitTask({
                type: "echo",
                payload: { i },
                idempotencyKey: `cluster-${i}`,
              });
              taskIds.push(taskId);
              return;
            } catch (error) {
              submitErrors.push(`${Date.now()}: ${(error as Error).message}`);
              await sleep(200);
            }
          }
        })(),
      );
      if (i === KILL_AFTER) {
        killed = (await jsm.streams.info("TASKS")).cluster?.leader ?? "";
        killedAt = Date.now();
        await cluster.nodes[Number(killed.slice(1))]!.kill();
      }
      await sleep(SUBMIT_INTERVAL_MS);
    }
    await Promise.all(submissions);
    expect(killed).toMatch(/^n[0-2]$/);
    expect(new Set(taskIds).size).toBe(TASKS);

    await waitFor("every task finished", async () => (await unfinished(pipeline.redisClient, taskIds)).length === 0, {
      timeoutMs: 90_000,
      intervalMs: 500,
    }).catch(async (error: Error) => {
      // Name what is stuck and where: a bare time-out cannot be told apart from a slow machine.
      throw new Error(`${error.message}\n${await stuckReport(pipeline.redisClient, jsm, taskIds)}`);
    });
    await waitFor("results and audit events handled", () => streamsDrained(jsm), {
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    const outcomes = await readOutcomes(pipeline.redisClient, taskIds);
    expect(problemsOf(outcomes, () => true)).toEqual([]);

    // A new leader took over, and the pipeline went on completing tasks after the kill.
    const leader = (await jsm.streams.info("TASKS")).cluster?.leader;
    expect(leader).toMatch(/^n[0-2]$/);
    expect(leader).not.toBe(killed);
    const times = [...completedAt.values()].sort((a, b) => a - b);
    expect(times.filter((t) => t > killedAt).length).toBeGreaterThan(0);
    let longestGap = 0;
    let gapStart = 0;
    for (let i = 1; i < times.length; i++) {
      const gap = (times[i] as number) - (times[i - 1] as number);
      if (gap > longestGap) [longestGap, gapStart] = [gap, times[i - 1] as number];
    }
    const report = {
      tasks: TASKS,
      killed,
      newLeader: leader,
      longestGapMs: longestGap,
      gapStartedMsAfterKill: gapStart - killedAt,
      submitErrors: submitErrors.length,
      firstSubmitErrors: submitErrors.slice(0, 3),
      completionsSeen: times.length,
    };
    console.log(`[nats-cluster failover] ${JSON.stringify(report)}`);
    // Generous: measured 6-10 s alone, but up to 36 s with another test file sharing the 2 cores (CI runs two
    // files at once). The property is that the pipeline keeps going without losing anything; the figure is logged.
    expect(longestGap).toBeLessThan(60_000);
    // Longer than the waits inside (90 s + 30 s): a slow failover must fail an assertion, not the test's timeout.
  }, 180_000);
});
