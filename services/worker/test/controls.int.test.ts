/**
 * followControls against a real redis-server: a pause written to queue_paused reaches the dispatcher; while
 * Redis is down the last known state stays in force (an outage does not resume a paused queue); once Redis is back a
 * resume reaches it. The dispatcher is a record of what it was told (the real one is exercised in pause.int).
 */
import { Writable } from "node:stream";
import type { Priority } from "@tm/flow";
import { createLogger } from "@tm/kit";
import { pauseQueue, resumeQueue } from "@tm/store";
import { useInfra, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, test } from "vitest";
import { followControls } from "../src/controls.js";

const infra = useInfra();
let redis: Redis;

beforeAll(() => {
  // Retries every 50 ms while the server is down, so the poller sees it fail and then recover.
  redis = new Redis(infra.redis.url, { retryStrategy: () => 50, maxRetriesPerRequest: 0 });
  redis.on("error", () => undefined); // the refused reconnects while the server is stopped, on purpose
});
afterAll(() => redis?.disconnect());

test("the last known pause stays in force while Redis is down; a resume after it comes back is applied", async () => {
  const paused = new Set<Priority>();
  const dispatcher = {
    paused: (priority: Priority) => paused.has(priority),
    setPaused: (priority: Priority, on: boolean) => void (on ? paused.add(priority) : paused.delete(priority)),
    quiet: false,
    setQuiet: async () => 0,
  };
  const lines: string[] = [];
  const log = createLogger(
    "worker",
    "debug",
    new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  );
  const failedReads = () => lines.filter((line) => line.includes("could not read the paused queues")).length;

  await pauseQueue(redis, "medium", "ops");
  const follower = followControls(redis, "test:1", dispatcher, 20, log);
  try {
    await follower.ready;
    expect([...paused]).toEqual(["medium"]);

    await infra.redis.stop();
    const before = failedReads();
    await waitFor("three failed reads while Redis is down", () => failedReads() >= before + 3);
    expect([...paused]).toEqual(["medium"]);

    await infra.redis.start();
    await waitFor("the connection back", async () => (await redis.ping().catch(() => "")) === "PONG");
    await resumeQueue(redis, "medium");
    await waitFor("the resume applied", () => paused.size === 0);
    expect(lines.some((line) => line.includes("queue resumed"))).toBe(true);
  } finally {
    follower.stop();
  }
});
