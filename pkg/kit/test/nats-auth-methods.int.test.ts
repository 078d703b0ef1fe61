/**
 * The ways a service authenticates to NATS besides a user and password (NATS_TOKEN, NATS_NKEY_SEED_FILE) against real
 * nats-servers that require them: the service's connection works with its credential and is refused without; two
 * ways at once, or a seed file without a seed, stop the configuration naming the variables.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_FLOW_SETTINGS, Subjects } from "@tm/flow";
import { type NatsServer, startNats } from "@tm/testkit";
import { connect, nkeyAuthenticator, nkeys } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { baseConfigShape, loadConfig } from "../src/config.js";
import { createLogger } from "../src/logger.js";
import { connectNats, natsAuthOf } from "../src/nats.js";

const log = createLogger("nats-auth-test", "silent");
const TOKEN = "s3cret-token-for-the-test";
const user = nkeys.createUser();
let dir: string;
let seedFile: string;
let tokenServer: NatsServer;
let nkeyServer: NatsServer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tm-nkey-"));
  seedFile = join(dir, "service.nk");
  // As nsc writes a user's seed: the seed between two marker lines.
  const seed = new TextDecoder().decode(user.getSeed());
  writeFileSync(seedFile, `-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`);
  [tokenServer, nkeyServer] = await Promise.all([
    startNats({ extraConfig: `authorization { token: "${TOKEN}" }`, readyAuth: { token: TOKEN } }),
    startNats({
      extraConfig: `authorization { users: [ { nkey: "${user.getPublicKey()}" } ] }`,
      readyAuth: { authenticator: nkeyAuthenticator(user.getSeed()) },
    }),
  ]);
}, 30_000);
afterAll(async () => {
  await Promise.all([tokenServer?.dispose(), nkeyServer?.dispose()]);
  rmSync(dir, { recursive: true, force: true });
});

async function publishesWith(server: NatsServer, env: Record<string, string>): Promise<void> {
  const config = loadConfig(baseConfigShape, { NATS_URL: server.url, ...env });
  const handle = await connectNats({
    url: config.NATS_URL,
    name: "auth-test",
    ...natsAuthOf(config),
    settings: DEFAULT_FLOW_SETTINGS,
    log,
  });
  try {
    expect((await handle.js.publish(Subjects.audit, new TextEncoder().encode("{}"))).stream).toBe("EVENTS");
  } finally {
    await handle.nc.close();
  }
}

const refused = (server: NatsServer, options: Parameters<typeof connect>[0] = {}) =>
  connect({ servers: server.url, reconnect: false, timeout: 3_000, ...options });

test("NATS_TOKEN: the service connects with the token; without it, or with another, the server refuses", async () => {
  await publishesWith(tokenServer, { NATS_TOKEN: TOKEN });
  await expect(refused(tokenServer)).rejects.toThrow(/authorization/i);
  await expect(refused(tokenServer, { token: "wrong" })).rejects.toThrow(/authorization/i);
});

test("NATS_NKEY_SEED_FILE: the service signs the server's challenge with the seed; another key is refused", async () => {
  await publishesWith(nkeyServer, { NATS_NKEY_SEED_FILE: seedFile });
  await expect(refused(nkeyServer, { authenticator: nkeyAuthenticator(nkeys.createUser().getSeed()) })).rejects.toThrow(
    /authorization/i,
  );
});

test("two ways at once, or a seed file without a seed, name the variables", () => {
  const auth = (env: Record<string, string>) => natsAuthOf(loadConfig(baseConfigShape, env));
  expect(() => auth({ NATS_USER: "worker", NATS_PASSWORD: "p", NATS_TOKEN: TOKEN })).toThrow(
    "NATS_USER and NATS_TOKEN: set one way to authenticate to NATS, not 2",
  );
  const empty = join(dir, "empty.nk");
  writeFileSync(empty, "# no seed here\n");
  expect(() => auth({ NATS_NKEY_SEED_FILE: empty })).toThrow(`NATS_NKEY_SEED_FILE: ${empty} holds no user seed`);
  expect(() => auth({ NATS_NKEY_SEED_FILE: join(dir, "missing.nk") })).toThrow(/^NATS_NKEY_SEED_FILE: cannot read/);
  expect(auth({ NATS_USER: "worker", NATS_PASSWORD: "p" })).toEqual({ user: "worker", password: "p" });
});
