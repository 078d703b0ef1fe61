/**
 * followControls against a real redis-server: a pause written to queue_paused and the worker's quiet mark reach the
 * dispatcher; while Redis is down the last known state stays in force (an outage neither resumes a paused queue nor
 * wakes a quiet worker); once Redis is back a resume reaches it. The dispatcher is a record of what it was told (the real one is exercised in pause.int).
 */
import type { Priority } from "@tm/flow";
import { Keys, pauseQueue, resumeQueue } from "@tm/store";
import { useInfra, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, test } from "vitest";
import { followControls } from "../src/controls.js";
import { capturedLog } from "./support.js";

const infra = useInfra();
let redis: Redis;

beforeAll(() => {
  // Retries every 50 ms while the server is down, so the poller sees it fail and then recover.
  redis = new Redis(infra.redis.url, { retryStrategy: () => 50, maxRetriesPerRequest: 0 });
  redis.on("error", () => undefined); // the refused reconnects while the server is stopped, on purpose
});
afterAll(() => redis?.disconnect());

test("the last known pause and quiet stay in force while Redis is down; a resume after it comes back is applied", async () => {
  const paused = new Set<Priority>();
  const dispatcher = {
    paused: (priority: Priority) => paused.has(priority),
    setPaused: (priority: Priority, on: boolean) => void (on ? paused.add(priority) : paused.delete(priority)),
    quiet: false,
    async setQuiet(on: boolean) {
      this.quiet = on;
      return 0;
    },
  };
  const { log, lines } = capturedLog();
  const failedReads = () => lines.filter((line) => line.includes("could not read the paused queues")).length;

  await pauseQueue(redis, "medium", "ops");
  await redis.set(Keys.workerQuiet("test:1"), JSON.stringify({ at: "", by: "ops" }));
  const follower = followControls(redis, "test:1", dispatcher, 20, log);
  try {
    await follower.ready;
    expect([...paused]).toEqual(["medium"]);
    expect(dispatcher.quiet).toBe(true);

    await infra.redis.stop();
    const before = failedReads();
    await waitFor("three failed reads while Redis is down", () => failedReads() >= before + 3);
    expect([...paused]).toEqual(["medium"]);
    expect(dispatcher.quiet).toBe(true);

    await infra.redis.start();
    await waitFor("the connection back", async () => (await redis.ping().catch(() => "")) === "PONG");
    await resumeQueue(redis, "medium");
    await redis.del(Keys.workerQuiet("test:1"));
    await waitFor("the resumes applied", () => paused.size === 0 && !dispatcher.quiet);
    expect(lines.some((line) => line.includes("queue resumed"))).toBe(true);
    expect(lines.some((line) => line.includes("worker resumed: it takes tasks again"))).toBe(true);
  } finally {
    follower.stop();
  }
});
