import { spawnService, useInfra } from "@tm/testkit";
import { expect, test } from "vitest";

const infra = useInfra();

test("a built service runs as its own process with telemetry preloaded, and stops cleanly on SIGTERM", async () => {
  const scheduler = await spawnService("scheduler", { NATS_URL: infra.nats.url, REDIS_URL: infra.redis.url });
  const metrics = await (await fetch(`http://127.0.0.1:${scheduler.opsPort}/metrics`)).text();
  expect(metrics).toMatch(/target_info\{[^}]*service_name="scheduler"/);
  const stopping = Date.now();
  await scheduler.process.stop();
  expect(await scheduler.process.exited()).toBe(0);
  // An idle service has nothing to finish: it must not wait out a pull's expiry or the shutdown deadline.
  expect(Date.now() - stopping).toBeLessThan(3_000);
});

test("a bad environment variable stops start-up with a message naming it", async () => {
  const bad = await spawnService(
    "scheduler",
    { NATS_URL: infra.nats.url, REDIS_URL: "http://nope", SCHEDULER_CONCURRENCY: "-3" },
    { waitReady: false },
  );
  expect(await bad.process.exited()).toBe(78);
  const output = bad.process.output.join("\n");
  expect(output).toMatch(/REDIS_URL: must be a redis\/rediss URL/);
  expect(output).toMatch(/SCHEDULER_CONCURRENCY: must be > 0/);
});
