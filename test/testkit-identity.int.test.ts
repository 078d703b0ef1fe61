/**
 * The test kit's servers and services are ready only when the process answering on their port is the one they
 * started: a port taken by another test's server between freePort() and the bind must fail the start, not hand the
 * test another test's NATS streams, Redis data or service.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, ManagedProcess, NatsServer, RedisServer, startNats, startRedis, waitForReadyz } from "@tm/testkit";
import { expect, test } from "vitest";

test("a redis-server whose port another redis-server answers is not ready", async () => {
  const theirs = await startRedis();
  const dir = mkdtempSync(join(tmpdir(), "tm-identity-redis-"));
  const ours = new RedisServer(theirs.port, dir, false, false);
  try {
    await expect(ours.start(3_000)).rejects.toThrow(/another redis-server|exited/);
  } finally {
    await ours.process.kill();
    rmSync(dir, { recursive: true, force: true });
    await theirs.dispose();
  }
});

test("a nats-server whose port another nats-server answers is not ready", async () => {
  const theirs = await startNats();
  const dir = mkdtempSync(join(tmpdir(), "tm-identity-nats-"));
  const monitorPort = await freePort();
  const configFile = join(dir, "nats.conf");
  writeFileSync(
    configFile,
    [
      `server_name: "ours"`,
      `listen: "127.0.0.1:${theirs.port}"`,
      `http: "127.0.0.1:${monitorPort}"`,
      `jetstream { store_dir: "${join(dir, "store")}" }`,
    ].join("\n"),
  );
  const ours = new NatsServer(theirs.port, monitorPort, join(dir, "store"), configFile, undefined, false, dir, "ours");
  try {
    ours.process.start();
    await expect(ours.ready(3_000)).rejects.toThrow(/another nats-server|exited/);
  } finally {
    await ours.dispose();
    await theirs.dispose();
  }
});

test("a service whose ops port another process answers is not ready; its own answer is", async () => {
  // The "service": a process that stays up without binding anything; the ops port is answered by this test.
  const child = new ManagedProcess({
    name: "idle",
    command: process.execPath,
    args: ["-e", "setInterval(() => {}, 1e3)"],
  });
  child.start();
  let answeringPid = process.pid;
  const ops = createServer((_request, response) => {
    response.writeHead(200, { "content-type": "application/json" });
    response.end(JSON.stringify({ status: "ready", service: "idle", pid: answeringPid, checks: {} }));
  });
  const port = await freePort();
  await new Promise<void>((resolve) => ops.listen(port, "127.0.0.1", resolve));
  try {
    await expect(waitForReadyz("idle", child, port, 1_000)).rejects.toThrow(/answered by another process/);
    answeringPid = child.pid ?? -1;
    await expect(waitForReadyz("idle", child, port, 5_000)).resolves.toBeUndefined();
  } finally {
    ops.close();
    await child.kill();
  }
});
