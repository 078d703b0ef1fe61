import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { exitedForTakenPort, spawnService, useInfra } from "@tm/testkit";
import { expect, test, vi } from "vitest";

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

test("SIGTERM exports the spans still buffered before the process exits", async () => {
  // A stand-in OTLP/HTTP collector that only counts what reaches /v1/traces.
  const traceExports: number[] = [];
  const collector = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      if (req.url === "/v1/traces") traceExports.push(Date.now());
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = collector.address() as AddressInfo;
    const scheduler = await spawnService("scheduler", {
      NATS_URL: infra.nats.url,
      REDIS_URL: infra.redis.url,
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
    });
    // An HTTP server span (probes and /metrics are not traced; an unknown route is). The batch processor would
    // hold it for 5 s, far longer than the stop below takes: only the shutdown's flush can deliver it in time.
    expect((await fetch(`http://127.0.0.1:${scheduler.opsPort}/no-such-route`)).status).toBe(404);
    const before = traceExports.length;
    await scheduler.process.stop();
    expect(await scheduler.process.exited()).toBe(0);
    // The export is answered before the child may exit, so it has been counted by now.
    expect(traceExports.length, "trace exports received before the process exited").toBeGreaterThan(before);
  } finally {
    await new Promise<void>((resolve) => collector.close(() => resolve()));
  }
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
  expect(exitedForTakenPort(bad)).toBe(false); // not a port problem: starting it again would not help
});

test("a service that cannot bind its port fails the spawn at once, naming the port, instead of waiting out readiness", async () => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, "0.0.0.0", resolve));
  try {
    const { port } = blocker.address() as AddressInfo;
    const started = Date.now();
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    const error = await spawnService("gateway", {
      NATS_URL: infra.nats.url,
      REDIS_URL: infra.redis.url,
      GRPC_PORT: String(port), // given by the caller: tried again on the same port, so it fails each time
    }).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(
      new RegExp(`gateway exited \\(code 1\\)[\\s\\S]*${port} is already in use`),
    );
    // Three start-ups, none waiting for the 60 s readiness deadline.
    expect(Date.now() - started).toBeLessThan(45_000);
    // Each new start is said, with who holds the port: this test process, listening.
    const said = warn.mock.calls.map((args) => String(args[0]));
    warn.mockRestore();
    expect(said).toHaveLength(2);
    expect(said[0]).toMatch(
      new RegExp(`gateway: port ${port} was taken .*holders now: LISTEN .*pid=${process.pid}\\b`),
    );
    // A caller that waits itself (startPipeline) tells this exit apart, to launch the service on new ports.
    const launched = await spawnService(
      "gateway",
      { NATS_URL: infra.nats.url, REDIS_URL: infra.redis.url, GRPC_PORT: String(port) },
      { waitReady: false },
    );
    await launched.process.exited();
    expect(exitedForTakenPort(launched)).toBe(true);
  } finally {
    await new Promise((resolve) => blocker.close(resolve));
  }
});
