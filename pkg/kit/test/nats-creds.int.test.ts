/**
 * NATS_CREDS_FILE against a real nats-server in operator mode (decentralised JWT auth; the accounts are in its
 * configuration): a service connects with a user's .creds file and uses JetStream; a user of an account the server
 * does not know is refused; a renewed file is read at the next connection, so a short-lived JWT replaced before it
 * expires keeps the service connected; wrong files stop the configuration naming the variable; the service exports
 * when its JWT expires (tm_credential_not_after_timestamp_seconds).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_FLOW_SETTINGS, Subjects } from "@tm/flow";
import { createNatsOperator, type NatsOperator, type NatsServer, startNats, waitFor } from "@tm/testkit";
import { connect, credsAuthenticator, nkeys } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { baseConfigShape, loadConfig } from "../src/config.js";
import { createLogger } from "../src/logger.js";
import { connectNats, natsAuthOf } from "../src/nats.js";
import { checkNatsCreds, natsCredsSource, watchNatsCredsExpiry } from "../src/nats-creds.js";
import { defineService, startService } from "../src/service.js";

const log = createLogger("nats-creds-test", "silent");
let dir: string;
let operator: NatsOperator;
let server: NatsServer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tm-creds-"));
  operator = await createNatsOperator();
  server = await startNats({
    extraConfig: operator.serverConfig,
    readyAuth: { authenticator: credsAuthenticator(await operator.userCreds("ready")) },
  });
}, 30_000);
afterAll(async () => {
  await server?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

function credsFile(name: string, content: Uint8Array | string): string {
  const path = join(dir, `${name}.creds`);
  writeFileSync(path, content);
  return path;
}

async function serviceConnection(path: string) {
  const config = loadConfig(baseConfigShape, { NATS_URL: server.url, NATS_CREDS_FILE: path });
  return connectNats({
    url: config.NATS_URL,
    name: "creds-test",
    ...natsAuthOf(config),
    settings: DEFAULT_FLOW_SETTINGS,
    log,
  });
}

const publishAudit = async (handle: Awaited<ReturnType<typeof serviceConnection>>) =>
  (await handle.js.publish(Subjects.audit, new TextEncoder().encode("{}"))).stream;

test("NATS_CREDS_FILE: the service connects as the file's user, provisions the streams and publishes", async () => {
  const handle = await serviceConnection(credsFile("worker", await operator.userCreds("worker")));
  try {
    expect(await publishAudit(handle)).toBe("EVENTS");
  } finally {
    await handle.nc.close();
  }
});

test("a service started with NATS_CREDS_FILE exports when its JWT was issued and expires", async () => {
  const path = credsFile("exporting", await operator.userCreds("exporting", { expiresInSeconds: 3600 }));
  const { issuedAt, expiresAt } = checkNatsCreds(path, readFileSync(path, "utf8"));
  const probe = defineService({ name: "creds-probe", opsPort: 0, needs: { redis: false }, async start() {} });
  const service = await startService(probe, {
    NATS_URL: server.url,
    NATS_CREDS_FILE: path,
    OPS_PORT: "0",
    LOG_LEVEL: "silent",
  });
  try {
    const metrics = await (await fetch(`http://127.0.0.1:${service.opsPort}/metrics`)).text();
    const value = (name: string) =>
      Number(
        metrics
          .split("\n")
          .find((line) => line.startsWith(`${name}{`) && line.includes('credential="nats_creds"'))
          ?.split(" ")
          .at(-1),
      );
    expect(value("tm_credential_not_after_timestamp_seconds")).toBe(expiresAt!.getTime() / 1000);
    expect(value("tm_credential_not_before_timestamp_seconds")).toBe(issuedAt!.getTime() / 1000);
  } finally {
    await service.stop();
  }
});

test("a user of an account the server does not know is refused", async () => {
  await expect(
    connect({
      servers: server.url,
      reconnect: false,
      timeout: 3_000,
      authenticator: credsAuthenticator(await operator.strangerCreds("stranger")),
    }),
  ).rejects.toThrow(/authorization/i);
});

test("a renewed file is read at the next connection: a JWT replaced before it expires keeps the service going", {
  timeout: 30_000,
}, async () => {
  const path = credsFile("short-lived", await operator.userCreds("short-lived", { expiresInSeconds: 3 }));
  const firstExpiry = checkNatsCreds(path, readFileSync(path, "utf8")).expiresAt!.getTime();
  const handle = await serviceConnection(path);
  try {
    let reconnects = 0;
    handle.onReconnect(() => reconnects++);
    // Renewed while the first JWT is still valid, as whoever issues them would: only a connection made from now on
    // can carry the new one. At its expiry the server closes the connection, and the client reconnects with the file.
    const renewed = await operator.userCreds("short-lived", { expiresInSeconds: 3600 });
    writeFileSync(path, renewed);
    const renewedUser = nkeys.fromSeed(new TextEncoder().encode(seedOf(renewed))).getPublicKey();
    await waitFor("the connection to be renewed after the first JWT expired", () => reconnects > 0, {
      timeoutMs: 20_000,
    });
    expect(Date.now()).toBeGreaterThanOrEqual(firstExpiry);
    expect(handle.nc.isClosed()).toBe(false);
    expect(await publishAudit(handle)).toBe("EVENTS");
    expect(await authorizedUsers()).toContain(renewedUser);
  } finally {
    await handle.nc.close();
  }
});

test("wrong files stop the configuration naming NATS_CREDS_FILE and what is wrong", async () => {
  const auth = (path: string) => natsAuthOf(loadConfig(baseConfigShape, { NATS_CREDS_FILE: path }));
  const good = new TextDecoder().decode(await operator.userCreds("good"));
  const expired = new TextDecoder().decode(await operator.userCreds("old", { expiresInSeconds: -60 }));
  const other = new TextDecoder().decode(await operator.userCreds("other"));

  expect(() => auth(join(dir, "missing.creds"))).toThrow(/^NATS_CREDS_FILE: cannot read/);
  const empty = credsFile("empty", "# nothing here\n");
  expect(() => auth(empty)).toThrow(`NATS_CREDS_FILE: ${empty} holds no user JWT and seed`);
  const account = credsFile("account", good.replace(jwtOf(good), operator.accountJwt));
  expect(() => auth(account)).toThrow(`NATS_CREDS_FILE: ${account}: its JWT is not a user's but "account"`);
  const mismatched = credsFile("mismatched", good.replace(seedOf(good), seedOf(other)));
  expect(() => auth(mismatched)).toThrow(/its seed is not the JWT's user's/);
  const old = credsFile("expired", expired);
  expect(() => auth(old)).toThrow(new RegExp(`^NATS_CREDS_FILE: ${old}: its JWT expired at \\d{4}-`));
  expect(() =>
    natsAuthOf(loadConfig(baseConfigShape, { NATS_CREDS_FILE: credsFile("good", good), NATS_TOKEN: "t" })),
  ).toThrow("NATS_TOKEN and NATS_CREDS_FILE: set one way to authenticate to NATS, not 2");
  expect(auth(credsFile("good", good))).toEqual({ credsFile: join(dir, "good.creds") });
});

test("a renewed file that does not check out is not used: the last good one is, with one warning", async () => {
  const lines: { level: string; msg: string; natsUser?: string }[] = [];
  const captured = createLogger("creds-source", "info", { write: (line: string) => lines.push(JSON.parse(line)) });
  const first = new TextDecoder().decode(await operator.userCreds("first"));
  const path = credsFile("source", first);
  const source = natsCredsSource(path, captured);
  const read = () => new TextDecoder().decode(source());
  expect(read()).toBe(first);

  writeFileSync(path, "half-written");
  expect([read(), read(), read()]).toEqual([first, first, first]);
  expect(lines.filter((l) => l.level === "warn").map((l) => l.msg)).toEqual([
    "NATS_CREDS_FILE cannot be used as it is now: connecting with the credentials read before",
  ]);

  const second = new TextDecoder().decode(await operator.userCreds("second"));
  writeFileSync(path, second);
  expect(read()).toBe(second);
  expect(lines.find((l) => l.msg.startsWith("NATS credentials renewed"))?.natsUser).toBe("second");
});

test("a JWT near its expiry and not renewed is warned about, an expired one is an error; a renewed one is not", async () => {
  const lines: { level: string; msg: string; remainingS?: number }[] = [];
  const captured = createLogger("creds-expiry", "info", { write: (line: string) => lines.push(JSON.parse(line)) });
  const path = credsFile("expiring", await operator.userCreds("expiring", { expiresInSeconds: 3600 }));
  // Each watcher looks once as it starts; the clock is moved instead of waited for.
  const lookAt = (offsetMs: number) => {
    lines.length = 0;
    watchNatsCredsExpiry(path, captured, 60_000, () => Date.now() + offsetMs)();
    return lines.map((l) => ({ level: l.level, msg: l.msg, remainingS: l.remainingS }));
  };
  expect(lookAt(0)).toEqual([]); // an hour left: fine
  expect(lookAt(50 * 60_000)).toEqual([]); // 10 minutes left of an hour: more than a tenth
  const soon = lookAt(55 * 60_000); // 5 minutes left
  expect(soon).toEqual([
    {
      level: "warn",
      msg: "the NATS credentials in NATS_CREDS_FILE expire soon and have not been renewed",
      remainingS: expect.any(Number),
    },
  ]);
  expect(soon[0]!.remainingS).toBeGreaterThan(240);
  expect(soon[0]!.remainingS).toBeLessThanOrEqual(300);
  expect(lookAt(2 * 3600_000).map((l) => [l.level, l.msg])).toEqual([
    ["error", "the NATS credentials in NATS_CREDS_FILE have expired: renew the file"],
  ]);
  writeFileSync(path, await operator.userCreds("renewed", { expiresInSeconds: 3 * 3600 }));
  expect(lookAt(55 * 60_000)).toEqual([]); // renewed: two hours left
  writeFileSync(path, await operator.userCreds("forever"));
  expect(lookAt(365 * 24 * 3600_000)).toEqual([]); // no expiry at all
});

const blocks = (creds: Uint8Array | string) =>
  [...(typeof creds === "string" ? creds : new TextDecoder().decode(creds)).matchAll(/-{3,}[^\n]*-{3,}\n(\S+)\n/g)].map(
    (m) => m[1]!,
  );
const jwtOf = (creds: Uint8Array | string) => blocks(creds)[0]!;
const seedOf = (creds: Uint8Array | string) => blocks(creds)[1]!;

/** The users the server's monitoring lists as connected (/connz?auth=1). */
async function authorizedUsers(): Promise<string[]> {
  const connz = (await (await fetch(`http://127.0.0.1:${server.monitorPort}/connz?auth=1`)).json()) as {
    connections?: { authorized_user?: string }[];
  };
  return (connz.connections ?? []).map((c) => c.authorized_user ?? "");
}
