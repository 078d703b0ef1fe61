/**
 * The NATS permission model (configs/nats/permissions.json → auth.conf) against a real nats-server: every service's
 * user can do its whole start-up and its own work, and is refused what belongs to another service. The same
 * permissions as user JWTs (operator mode, `render.mjs --nsc`) work the same way through NATS_CREDS_FILE.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createNatsOperator, startNats, startRedis, waitFor } from "@tm/testkit";
import { credsAuthenticator } from "nats";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  AUTH_FILE,
  K8S_AUTH_FILE,
  loadPermissions,
  permissionsOf,
  ADVISORY_DURABLE as RENDERED_ADVISORY_DURABLE,
  STREAM_NAMES as RENDERED_STREAM_NAMES,
  renderAuthorization,
  durableName as renderedDurableName,
  streamOf as renderedStreamOf,
  renderNscCommands,
} from "../configs/nats/render.mjs";
import { connectAs, type NatsConnection } from "../pkg/deploycheck/src/index.js";
import {
  ADVISORY_DURABLE,
  ALL_SUBJECTS,
  allStreamConfigs,
  createPublisher,
  DEFAULT_FLOW_SETTINGS,
  durableName,
  provisionConsumer,
  provisionStreams,
  type Subject,
  streamOf,
} from "../pkg/flow/src/index.js";
import {
  baseConfigShape,
  connectNats,
  createLogger,
  loadConfig,
  natsAuthOf,
  startService,
} from "../pkg/kit/src/index.js";
import { readStatus } from "../pkg/store/src/index.js";
import { audit } from "../services/audit/src/service.js";
import { deadletter } from "../services/deadletter/src/service.js";
import { enricher } from "../services/enricher/src/service.js";
import { gateway } from "../services/gateway/src/service.js";
import { ingest } from "../services/ingest/src/service.js";
import { notifier } from "../services/notifier/src/service.js";
import { resultStore } from "../services/result-store/src/service.js";
import { scheduler } from "../services/scheduler/src/service.js";
import { worker } from "../services/worker/src/service.js";

interface UserSpec {
  publish: string[];
  consume: Subject[];
  subscribe: string[];
  readStreams?: string[];
}
const permissions = loadPermissions() as { users: Record<string, UserSpec> };
const users = Object.keys(permissions.users);
const passwordOf = (user: string) => `test-${user}-secret`;

let nats: Awaited<ReturnType<typeof startNats>>;
const open: NatsConnection[] = [];
async function as(user: string): Promise<NatsConnection> {
  const nc = await connectAs(nats.url, user, passwordOf(user));
  open.push(nc);
  return nc;
}

beforeAll(async () => {
  nats = await startNats({
    extraConfig: renderAuthorization(permissions, (user: string) => JSON.stringify(passwordOf(user))),
    readyAuth: { user: "scheduler", pass: passwordOf("scheduler"), inboxPrefix: "_INBOX_scheduler" },
  });
});
afterAll(async () => {
  await Promise.all(open.map((nc) => nc.close().catch(() => undefined)));
  await nats?.dispose();
});

/** Permission errors the server reports on this connection, as "<operation> <subject>" (nats.js status events). */
function permissionErrors(nc: NatsConnection): string[] {
  const seen: string[] = [];
  void (async () => {
    for await (const status of nc.status()) {
      const context = (status as { permissionContext?: { operation: string; subject: string } }).permissionContext;
      if (context) seen.push(`${context.operation} ${context.subject}`);
    }
  })();
  return seen;
}

async function nextPermissionError(seen: string[]): Promise<string> {
  await waitFor("a permission error from the server", () => seen.length > 0, { timeoutMs: 5_000 });
  return seen[0]!;
}

describe("the rendered configuration", () => {
  test("auth.conf and its k8s copy are what permissions.json renders to (run node configs/nats/render.mjs)", () => {
    const rendered = renderAuthorization(permissions);
    expect(readFileSync(AUTH_FILE, "utf8")).toBe(rendered);
    expect(readFileSync(K8S_AUTH_FILE, "utf8")).toBe(rendered);
  });

  test("passwords are only ever variable references", () => {
    expect(readFileSync(AUTH_FILE, "utf8")).not.toMatch(/password:\s*"/);
  });

  test("the renderer names streams and durables as pkg/flow does, and knows only pkg/flow's subjects", () => {
    for (const [user, spec] of Object.entries(permissions.users)) {
      for (const subject of spec.consume) {
        expect(ALL_SUBJECTS).toContain(subject);
        expect(renderedStreamOf(subject)).toBe(streamOf(subject));
        expect(renderedDurableName(user, subject)).toBe(durableName(user, subject));
      }
    }
    // Every user may provision every stream pkg/flow provisions, the ADVISORIES stream included.
    expect(RENDERED_STREAM_NAMES).toEqual(allStreamConfigs().map((config) => config.name));
    expect(RENDERED_ADVISORY_DURABLE).toBe(ADVISORY_DURABLE);
  });

  test("every server service that talks to NATS has a user", async () => {
    const { existsSync, readdirSync } = await import("node:fs");
    // Services are the directories with a src/service.ts (not the client CLI, nor services/combined, which runs them
    // under their own users: NOTIFIER__NATS_USER, ...).
    const withNats = readdirSync("services").filter(
      (name) =>
        name !== "client" &&
        existsSync(`services/${name}/src/service.ts`) &&
        !/nats:\s*false/.test(readFileSync(`services/${name}/src/service.ts`, "utf8")),
    );
    expect(users.sort()).toEqual(withNats.sort());
  });
});

describe("each service's user", () => {
  test.each(users)(
    "%s can provision the streams, its consumers, pull and ack, and publish what it produces",
    async (user) => {
      const spec = permissions.users[user]!;
      const nc = await as(user);
      const errors = permissionErrors(nc);
      const jsm = await nc.jetstreamManager();
      await provisionStreams(jsm, DEFAULT_FLOW_SETTINGS);
      const js = nc.jetstream();
      for (const subject of spec.consume) {
        await provisionConsumer(jsm, user, subject);
        await provisionConsumer(jsm, user, subject); // the second start-up takes the info/update path
        const consumer = await js.consumers.get(streamOf(subject), durableName(user, subject));
        const batch = await consumer.fetch({ max_messages: 1, expires: 1_000 });
        for await (const msg of batch) msg.ack();
      }
      for (const subject of spec.publish) {
        if ((ALL_SUBJECTS as readonly string[]).includes(subject)) await js.publish(subject, "{}");
        else nc.publish(subject, "{}");
      }
      for (const stream of spec.readStreams ?? []) {
        // A message, or "no message found" from an empty stream (ADVISORIES): an answer, not a permissions violation.
        const read = await jsm.streams.getMessage(stream, { seq: 1 }).then(
          () => "found",
          (error: unknown) => String((error as { code?: unknown }).code),
        );
        expect(["found", "404"], stream).toContain(read);
      }
      for (const subject of spec.subscribe) nc.subscribe(subject, { max: 1 });
      // The server answers in order: a refused subscription or publish is reported before this flush's PONG.
      await nc.flush();
      expect(errors).toEqual([]);
    },
  );
});

describe("the scheduler's user", () => {
  test("consumes tasks.schedule and publishes tasks.worker.high through pkg/flow", async () => {
    const gateway = await as("gateway");
    await gateway.jetstream().publish("tasks.ingest", "{}");
    const nc = await as("scheduler");
    const jsm = await nc.jetstreamManager();
    await provisionStreams(jsm);
    const durable = await provisionConsumer(jsm, "scheduler", "tasks.schedule");
    const ingest = await as("ingest");
    await ingest.jetstream().publish("tasks.schedule", '{"from":"ingest"}', { msgID: "auth-test:schedule" });
    const consumer = await nc.jetstream().consumers.get("TASKS", durable);
    const msg = await consumer.next({ expires: 5_000 });
    expect(msg?.string()).toBe('{"from":"ingest"}');
    await msg?.ackAck();

    const now = new Date().toISOString();
    const ack = await createPublisher(nc).publish(
      "tasks.worker.high",
      {
        taskId: crypto.randomUUID(),
        type: "echo",
        priority: "high",
        payload: {},
        metadata: {},
        createdAt: now,
        generation: 0,
        enrichment: { payloadBytes: 2, payloadSha256: "0".repeat(64), fieldCount: 0, receivedAt: now, enrichedAt: now },
      },
      { msgId: "auth-test:worker:0" },
    );
    expect(ack.stream).toBe("TASKS");
  });

  test("is refused publishing tasks.results, and nothing is stored", async () => {
    const nc = await as("scheduler");
    const jsm = await nc.jetstreamManager();
    const stored = async () =>
      (await jsm.streams.info("TASKS", { subjects_filter: "tasks.results" })).state.subjects?.["tasks.results"] ?? 0;
    const before = await stored();
    const errors = permissionErrors(nc);
    nc.publish("tasks.results", "{}");
    expect(await nextPermissionError(errors)).toBe("publish tasks.results");
    expect(await stored()).toBe(before);
  });

  test("is refused creating or pulling from another service's durable", async () => {
    const nc = await as("scheduler");
    const jsm = await nc.jetstreamManager({ timeout: 1_000 });
    await expect(provisionConsumer(jsm, "worker", "tasks.worker.high")).rejects.toThrow();
    // Pointing its own durable at another subject is refused too: the filter is part of the permitted subject.
    await expect(
      jsm.consumers.add("TASKS", { durable_name: "scheduler-tasks-schedule-x", filter_subject: "tasks.results" }),
    ).rejects.toThrow();
  });
});

describe("worker pools (TASK_ROUTES) under these permissions", () => {
  test("the docs' recipe (a pool's subjects in the scheduler's publish and the worker's consume) lets the scheduler queue on the pool and the worker pull it; without it the worker is refused", async () => {
    const pool = ["high", "medium", "low"].map((priority) => `tasks.worker.${priority}.gpu`);
    // Without the recipe (the shipped permissions): the worker may not create the pool's durable.
    const plain = await (await as("worker")).jetstreamManager({ timeout: 1_000 });
    await expect(provisionConsumer(plain, "worker", "tasks.worker.high.gpu")).rejects.toThrow();

    const withPool = structuredClone(permissions);
    withPool.users.scheduler!.publish.push(...pool);
    withPool.users.worker!.consume.push(...(pool as Subject[]));
    const server = await startNats({
      extraConfig: renderAuthorization(withPool, (user: string) => JSON.stringify(passwordOf(user))),
      readyAuth: { user: "scheduler", pass: passwordOf("scheduler"), inboxPrefix: "_INBOX_scheduler" },
    });
    const opened: NatsConnection[] = [];
    const connect = async (user: string) => {
      const nc = await connectAs(server.url, user, passwordOf(user));
      opened.push(nc);
      return nc;
    };
    try {
      const scheduler = await connect("scheduler");
      const errors = permissionErrors(scheduler);
      await provisionStreams(await scheduler.jetstreamManager());
      const ack = await scheduler.jetstream().publish("tasks.worker.high.gpu", '{"pool":"gpu"}', { msgID: "pool:1" });
      expect(ack.stream).toBe("TASKS");
      const workerNc = await connect("worker");
      const jsm = await workerNc.jetstreamManager();
      const durable = await provisionConsumer(jsm, "worker", "tasks.worker.high.gpu");
      expect(durable).toBe("worker-tasks-worker-high-gpu");
      const msg = await (await workerNc.jetstream().consumers.get("TASKS", durable)).next({ expires: 5_000 });
      expect(msg?.string()).toBe('{"pool":"gpu"}');
      await msg?.ackAck();
      await scheduler.flush();
      expect(errors).toEqual([]);
    } finally {
      await Promise.all(opened.map((nc) => nc.close().catch(() => undefined)));
      await server.dispose();
    }
  });
});

describe("other users", () => {
  test.each([
    ["_INBOX.>", "every connection's default inbox"],
    ["_INBOX_gateway.>", "the gateway's inbox"],
  ])("the worker is refused a subscription on %s (%s): it reads only its own replies", async (subject) => {
    const nc = await as("worker");
    const refused = new Promise<string>((resolve) => {
      nc.subscribe(subject, { callback: (error) => error && resolve(String(error.message)) });
    });
    expect(await refused).toMatch(/permissions violation/i);
  });

  test("audit is refused a subscription on tasks.ingest", async () => {
    const nc = await as("audit");
    const refused = new Promise<string>((resolve) => {
      nc.subscribe("tasks.ingest", { callback: (error) => error && resolve(String(error.message)) });
    });
    expect(await refused).toMatch(/permissions violation.*tasks\.ingest/i);
  });

  test("only the gateway may broadcast cancellations, and only the worker hears them", async () => {
    const worker = await as("worker");
    const errors = permissionErrors(worker);
    worker.publish("control.cancel", "{}");
    expect(await nextPermissionError(errors)).toBe("publish control.cancel");

    const heard: string[] = [];
    worker.subscribe("control.cancel", { callback: (_error, msg) => heard.push(msg.string()) });
    await worker.flush();
    const gateway = await as("gateway");
    gateway.publish("control.cancel", '{"taskId":"x"}');
    await waitFor("the worker hears the gateway's cancel notice", () => heard.length === 1, { timeoutMs: 5_000 });
  });

  test("the gateway may read what queue statistics need (consumer lists, stream messages); audit may not", async () => {
    const gateway = await as("gateway");
    await gateway.jetstream().publish("tasks.ingest", '{"for":"stats"}');
    const jsm = await gateway.jetstreamManager({ timeout: 2_000 });
    const names: string[] = [];
    for await (const info of jsm.consumers.list("TASKS")) names.push(info.name);
    expect(names).toContain("scheduler-tasks-schedule");
    const first = (await jsm.streams.info("TASKS")).state.first_seq;
    expect((await jsm.streams.getMessage("TASKS", { seq: first })).seq).toBe(first);

    const other = await (await as("audit")).jetstreamManager({ timeout: 1_000 });
    await expect(
      (async () => {
        for await (const _ of other.consumers.list("TASKS")) break;
      })(),
    ).rejects.toThrow();
  });

  test("a wrong password or no user is refused", async () => {
    await expect(connectAs(nats.url, "worker", "wrong")).rejects.toThrow(/authorization/i);
    await expect(connectAs(nats.url, "", "")).rejects.toThrow();
  });
});

describe("the pipeline", () => {
  test("runs a task end to end with every service connected as its own user", async () => {
    const redis = await startRedis();
    const started: Array<Awaited<ReturnType<typeof startService>>> = [];
    try {
      const base = (user: string) => ({
        NATS_URL: nats.url,
        NATS_USER: user,
        NATS_PASSWORD: passwordOf(user),
        REDIS_URL: redis.url,
        LOG_LEVEL: "silent",
        OPS_PORT: "0",
        PORT: "0",
        FLOW_ACK_WAIT_MS: "2000",
        FLOW_RETRY_DELAYS_MS: "100,200,300,400,500",
      });
      const enricherService = await startService(enricher, base("enricher"));
      started.push(enricherService);
      const enricherPort = (enricherService.started as { port?: number }).port;
      for (const [definition, env] of [
        [gateway, { ...base("gateway"), GRPC_PORT: "0", GATEWAY_WEB_PORT: "0" }],
        [ingest, { ...base("ingest"), ...(enricherPort ? { ENRICHER_URL: `http://127.0.0.1:${enricherPort}` } : {}) }],
        [scheduler, base("scheduler")],
        [worker, base("worker")],
        [resultStore, base("result-store")],
        [notifier, base("notifier")],
        [audit, base("audit")],
        [deadletter, base("deadletter")],
      ] as const) {
        started.push(await startService(definition as Parameters<typeof startService>[0], env));
      }
      expect(enricherPort, "the enricher's started value exposes its port").toBeDefined();

      const nc = await as("gateway");
      const taskId = crypto.randomUUID();
      await createPublisher(nc).publish(
        "tasks.ingest",
        {
          taskId,
          type: "echo",
          priority: "high",
          payload: { hello: "auth" },
          metadata: {},
          createdAt: new Date().toISOString(),
          generation: 0,
        },
        { msgId: `${taskId}:ingest` },
      );
      const client = started.at(-1)!.runtime.redis;
      await waitFor("the task SUCCEEDED", async () => (await readStatus(client, taskId))?.state === "SUCCEEDED", {
        timeoutMs: 15_000,
      });
    } finally {
      for (const service of started.reverse()) await service.stop();
      await redis.dispose();
    }
  });
});

describe("as user JWTs in operator mode (render.mjs --nsc, NATS_CREDS_FILE)", () => {
  let server: Awaited<ReturnType<typeof startNats>>;
  let dir: string;
  const credsFiles = new Map<string, string>();
  beforeAll(async () => {
    const operator = await createNatsOperator();
    dir = mkdtempSync(join(tmpdir(), "tm-nats-jwt-users-"));
    for (const [user, spec] of Object.entries(permissions.users)) {
      const file = join(dir, `${user}.creds`);
      writeFileSync(file, await operator.userCreds(user, { permissions: permissionsOf(user, spec) }));
      credsFiles.set(user, file);
    }
    server = await startNats({
      extraConfig: operator.serverConfig,
      readyAuth: { authenticator: credsAuthenticator(await operator.userCreds("readiness")) },
    });
  }, 60_000);
  afterAll(async () => {
    await server?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  test.each(users)(
    "%s connects with its .creds file and its own inbox, provisions, consumes and publishes; _INBOX.> is refused",
    async (user) => {
      const spec = permissions.users[user]!;
      const config = loadConfig(baseConfigShape, {
        NATS_URL: server.url,
        NATS_CREDS_FILE: credsFiles.get(user)!,
        NATS_INBOX_PREFIX: `_INBOX_${user}`,
      });
      // As a service starts: the streams provisioned on connect, through its own inbox.
      const handle = await connectNats({
        url: config.NATS_URL,
        name: user,
        ...natsAuthOf(config),
        inboxPrefix: config.NATS_INBOX_PREFIX,
        settings: DEFAULT_FLOW_SETTINGS,
        log: createLogger(`jwt-${user}`, "silent"),
      });
      const nc = handle.nc as unknown as NatsConnection;
      try {
        const errors = permissionErrors(nc);
        for (const subject of spec.consume) await provisionConsumer(handle.jsm, user, subject);
        for (const subject of spec.publish) {
          if ((ALL_SUBJECTS as readonly string[]).includes(subject)) await handle.js.publish(subject, "{}");
          else handle.nc.publish(subject, "{}");
        }
        await handle.nc.flush();
        expect(errors).toEqual([]);
        const refused = new Promise<string>((resolve) => {
          handle.nc.subscribe("_INBOX.>", { callback: (error) => error && resolve(String(error.message)) });
        });
        expect(await refused).toMatch(/permissions violation/i);
      } finally {
        await handle.nc.close();
      }
    },
  );

  test("the nsc commands give each user exactly the rendered permissions, and its .creds file", () => {
    const commands = renderNscCommands(permissions, "TM");
    for (const [user, spec] of Object.entries(permissions.users)) {
      const block = commands.split("\n\n").find((b) => b.startsWith(`nsc add user --account 'TM' --name '${user}'`));
      expect(block, user).toBeDefined();
      const flags = (flag: string) => [...block!.matchAll(new RegExp(`--${flag} '([^']*)'`, "g"))].map((m) => m[1]);
      expect({ publish: flags("allow-pub"), subscribe: flags("allow-sub") }).toEqual(permissionsOf(user, spec));
      expect(block).toContain(`nsc generate creds --account 'TM' --name '${user}' --output-file '${user}.creds'`);
    }
  });
});
