/**
 * Authentication and rate limiting as deployed: two BUILT gateways (separate processes, `pnpm build` first) with
 * GATEWAY_AUTH_MODE=api-key and a key file, sharing one redis-server and one nats-server.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { type AuditEvent, STREAMS, Subjects } from "@tm/flow";
import {
  createAdminClient,
  createHealthClient,
  createTaskClient,
  ReplayResult,
  retryPushbackOf,
  ServingStatus,
  type TaskClient,
} from "@tm/proto";
import { appendDeadLetter } from "@tm/store";
import { REPO_ROOT, type SpawnedService, spawnService, useClients, useInfra, waitFor } from "@tm/testkit";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ingestDeadLetter } from "./helpers.js";

const KEYS = {
  alice: "alice-key-0123456789abcdef",
  carol: "carol-key-0123456789abcdef",
  daveOld: "dave-old-key-0123456789abcdef",
  daveNew: "dave-new-key-0123456789abcdef",
  erin: "erin-key-0123456789abcdef0",
};
const BURST = 10;

const infra = useInfra();
const clients = useClients(infra);
let dir: string;
let keyFile: string;
let gateways: SpawnedService[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "gateway-auth-"));
  keyFile = join(dir, "api-keys");
  await writeFile(keyFile, `alice:${KEYS.alice}\ncarol:${KEYS.carol}\ndave:${KEYS.daveOld}\nerin:${KEYS.erin}\n`);
  const env = {
    NATS_URL: infra.nats.url,
    REDIS_URL: infra.redis.url,
    GATEWAY_AUTH_MODE: "api-key",
    GATEWAY_API_KEYS_FILE: keyFile,
    // alice operates; the others are applications.
    GATEWAY_ADMIN_CALLERS: "alice",
    // 1 token/s refills slowly enough that a burst test on a slow machine still sees the limit.
    GATEWAY_RATE_LIMIT_PER_SEC: "1",
    GATEWAY_RATE_LIMIT_BURST: String(BURST),
  };
  gateways = await Promise.all([spawnService("gateway", env), spawnService("gateway", env)]);
});

afterAll(async () => {
  await Promise.all(gateways.map((gateway) => gateway.process.stop()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

const urlOf = (gateway: SpawnedService | undefined) => `http://127.0.0.1:${gateway?.port}`;
const clientOf = (gateway: SpawnedService | undefined, apiKey?: string): TaskClient =>
  createTaskClient({ baseUrl: urlOf(gateway), ...(apiKey ? { apiKey } : {}) });

/** The gRPC code a call ended with (Code.Ok when it succeeded). */
async function codeOf(call: Promise<unknown>): Promise<{ code: Code | 0; message: string; pushbackMs?: number }> {
  try {
    await call;
    return { code: 0, message: "" };
  } catch (error) {
    const connectError = ConnectError.from(error);
    return { code: connectError.code, message: connectError.rawMessage, pushbackMs: retryPushbackOf(error) };
  }
}

describe("authentication", () => {
  test("no key, a malformed header or a wrong key → UNAUTHENTICATED; the right key → OK, recorded as submitted_by", async () => {
    const missing = await codeOf(clientOf(gateways[0]).submitTask({ type: "echo" }));
    expect(missing).toEqual({
      code: Code.Unauthenticated,
      message: "missing credentials: send authorization: Bearer <api key>",
    });
    const wrong = await codeOf(clientOf(gateways[0], `${KEYS.alice}x`).submitTask({ type: "echo" }));
    expect(wrong).toEqual({ code: Code.Unauthenticated, message: "invalid credentials" });
    const basic = await codeOf(
      clientOf(gateways[0]).submitTask({ type: "echo" }, { headers: { authorization: `Basic ${KEYS.alice}` } }),
    );
    expect(basic).toEqual({ code: Code.Unauthenticated, message: "invalid credentials" });

    const alice = clientOf(gateways[1], KEYS.alice);
    // A client cannot pretend to be someone else through its own metadata.
    const { taskId } = await alice.submitTask({ type: "echo", metadata: { submitted_by: "mallory", team: "qa" } });
    const { task } = await alice.getTask({ taskId });
    expect(task?.metadata).toEqual({ submitted_by: "alice", team: "qa" });

    const metrics = await (await fetch(`http://127.0.0.1:${gateways[0]?.opsPort}/metrics`)).text();
    expect(metrics).toMatch(/tm_auth_failures_total\{[^}]*reason="missing"[^}]*\} 1/);
    expect(metrics).toMatch(/tm_auth_failures_total\{[^}]*reason="invalid"[^}]*\} 1/);
    expect(metrics).toMatch(/tm_auth_failures_total\{[^}]*reason="malformed"[^}]*\} 1/);
  });

  test("the health service answers without credentials (probes)", async () => {
    const health = createHealthClient({ baseUrl: urlOf(gateways[0]) });
    const response = await health.check({ service: "taskmanager.v1.TaskService" });
    expect(response.status).toBe(ServingStatus.SERVING);
  });

  test("taskctl --api-key is accepted; without it taskctl reports the missing credentials", async () => {
    const cli = join(REPO_ROOT, "services/client/dist/cli.js");
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const env = { ...process.env, TASKCTL_API_KEY: "" };
        execFile(process.execPath, [cli, ...args, "--addr", urlOf(gateways[0])], { env }, (error, stdout, stderr) =>
          resolve({ code: error ? (error.code as number) : 0, stdout, stderr }),
        );
      });
    const accepted = await run(["submit", "echo", "--json", "--api-key", KEYS.alice]);
    expect(accepted.code, accepted.stderr).toBe(0);
    expect(JSON.parse(accepted.stdout).taskId).toMatch(/^[0-9a-f-]{36}$/);
    const refused = await run(["submit", "echo"]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("missing credentials");
  });

  test("a rotated key file takes effect without a restart: the new key works, the old one is refused", async () => {
    await writeFile(keyFile, `alice:${KEYS.alice}\ncarol:${KEYS.carol}\ndave:${KEYS.daveNew}\nerin:${KEYS.erin}\n`);
    // Each gateway re-reads the file on its own schedule (mtime checked at most every 2 s): wait for both.
    for (const gateway of gateways) {
      await waitFor(
        "the new key to be accepted",
        async () =>
          (await codeOf(clientOf(gateway, KEYS.daveNew).getTask({ taskId: crypto.randomUUID() }))).code ===
          Code.NotFound,
        { timeoutMs: 15_000, intervalMs: 200 },
      );
      const old = await codeOf(clientOf(gateway, KEYS.daveOld).getTask({ taskId: crypto.randomUUID() }));
      expect(old).toEqual({ code: Code.Unauthenticated, message: "invalid credentials" });
    }
  });
});

describe("AdminService", () => {
  test("is for the admin callers only: an application's key gets PERMISSION_DENIED there and keeps the TaskService", async () => {
    const app = createAdminClient({ baseUrl: urlOf(gateways[0]), apiKey: KEYS.erin });
    for (const call of [
      () => app.listDeadLetters({}),
      () => app.getQueueStats({}),
      () => app.listTasks({}),
      () => app.replayDeadLetters({ ids: ["TASKS:1"] }),
      () => app.discardDeadLetters({ all: true }),
      () => app.requeueTasks({ taskIds: [crypto.randomUUID()] }),
    ]) {
      expect(await codeOf(call())).toEqual({
        code: Code.PermissionDenied,
        message: "caller erin may not use the AdminService (operators only): list it in GATEWAY_ADMIN_CALLERS",
      });
    }
    const { taskId } = await clientOf(gateways[1], KEYS.erin).submitTask({ type: "echo" });
    expect((await clientOf(gateways[1], KEYS.erin).getTask({ taskId })).task?.taskId).toBe(taskId);
    // An operator's key is let in; the refusals were counted.
    const ops = createAdminClient({ baseUrl: urlOf(gateways[0]), apiKey: KEYS.alice });
    expect((await codeOf(ops.getQueueStats({}))).code).toBe(0);
    const metrics = await (await fetch(`http://127.0.0.1:${gateways[0]?.opsPort}/metrics`)).text();
    expect(metrics).toMatch(/tm_auth_failures_total\{[^}]*reason="forbidden"[^}]*\} 6/);
    // And said once in the log (at most one such line per 10 s), naming the caller.
    await waitFor("the refusal in the gateway's log", () =>
      /"caller":"erin".*AdminService call refused: the caller is not an admin/.test(gateways[0]!.process.tail(400)),
    );
  });

  test("refuses a caller without credentials; a replay by a known caller is audited with their name", async () => {
    const anonymous = createAdminClient({ baseUrl: urlOf(gateways[0]) });
    const refused = await codeOf(anonymous.listDeadLetters({}));
    expect(refused).toEqual({
      code: Code.Unauthenticated,
      message: "missing credentials: send authorization: Bearer <api key>",
    });
    expect((await codeOf(anonymous.replayDeadLetters({ ids: ["TASKS:1"] }))).code).toBe(Code.Unauthenticated);

    // A task (it stays PENDING: nothing downstream runs here) and a dead letter for it, as the deadletter service
    // would have written it.
    const { taskId } = await clientOf(gateways[0], KEYS.alice).submitTask({ type: "echo" });
    const letterId = `TASKS:${Date.now()}`;
    await appendDeadLetter(clients.redis, ingestDeadLetter(taskId, letterId));
    const admin = createAdminClient({ baseUrl: urlOf(gateways[1]), apiKey: KEYS.alice });
    const replay = await admin.replayDeadLetters({ ids: [letterId] });
    expect(replay.outcomes).toEqual([
      expect.objectContaining({ id: letterId, result: ReplayResult.REPLAYED, taskId, generation: 1 }),
    ]);
    const jsm = await clients.nc.jetstreamManager();
    const audit = (await jsm.streams.getMessage(STREAMS.events, { last_by_subj: Subjects.audit })).json<AuditEvent>();
    expect(audit).toMatchObject({
      taskId,
      action: "replayed",
      detail: { deadLetterId: letterId, generation: 1, replayedBy: "alice" },
    });
  });
});

describe("rate limiting", () => {
  test("the burst is shared by both gateway processes; beyond it → RESOURCE_EXHAUSTED on either", async () => {
    const clients = gateways.map((gateway) => clientOf(gateway, KEYS.carol));
    const startedAt = Date.now();
    const outcomes: { gateway: number; code: Code | 0; message: string; pushbackMs?: number }[] = [];
    // Sequential, alternating gateways: 2 × BURST calls. Were the buckets per process, all of them would pass.
    for (let i = 0; i < 2 * BURST; i++) {
      const gateway = i % 2;
      const outcome = await codeOf(
        (clients[gateway] as TaskClient).getTask({ taskId: "00000000-0000-4000-8000-000000000000" }),
      );
      outcomes.push({ gateway, ...outcome });
    }
    const elapsedSeconds = (Date.now() - startedAt) / 1000;
    const admitted = outcomes.filter((outcome) => outcome.code === Code.NotFound);
    const limited = outcomes.filter((outcome) => outcome.code === Code.ResourceExhausted);
    expect(admitted.length + limited.length).toBe(2 * BURST);
    expect(admitted.length).toBeGreaterThanOrEqual(BURST);
    // At 1 token/s, at most one more call per elapsed second gets through.
    expect(admitted.length).toBeLessThanOrEqual(BURST + Math.ceil(elapsedSeconds));
    expect(new Set(limited.map((outcome) => outcome.gateway))).toEqual(new Set([0, 1]));
    expect(limited[0]?.message).toMatch(/^rate limit exceeded for caller carol: 1 requests\/s \(retry after \d+ ms\)$/);
    // Each refusal says when to retry in the gRPC trailer too (grpc-retry-pushback-ms): the next token, within 1 s.
    for (const { message, pushbackMs } of limited) {
      expect(pushbackMs).toBeGreaterThan(0);
      expect(pushbackMs).toBeLessThanOrEqual(1_000);
      expect(message).toContain(`retry after ${pushbackMs} ms`);
    }

    // Another caller has its own bucket.
    const alice = await codeOf(clientOf(gateways[1], KEYS.alice).getTask({ taskId: crypto.randomUUID() }));
    expect(alice.code).toBe(Code.NotFound);
    const metrics = await Promise.all(
      gateways.map(async (gateway) => (await fetch(`http://127.0.0.1:${gateway.opsPort}/metrics`)).text()),
    );
    for (const text of metrics) expect(text).toMatch(/tm_rate_limited_total\{[^}]*caller="carol"[^}]*\} \d+/);
  });

  test("opening a stream takes a token too: beyond the limit it is refused with RESOURCE_EXHAUSTED", async () => {
    const carol = clientOf(gateways[0], KEYS.carol);
    const drain = async (taskId: string) => {
      for await (const _ of carol.streamTaskStatus({ taskId })) break;
    };
    // carol's bucket was just emptied; at 1 token/s a few quick attempts must meet the limit.
    const codes: (Code | 0)[] = [];
    for (let i = 0; i < 3; i++) codes.push((await codeOf(drain(crypto.randomUUID()))).code);
    expect(codes).toContain(Code.ResourceExhausted);
  });
});
