/**
 * The NATS connection every service uses: reconnects forever (a NATS restart is routine), async stack traces off
 * (about a third of publish CPU, see FACTS.md), and the JetStream streams provisioned on connect (retried while
 * JetStream is still coming up: jetstream-startup.ts).
 */
import { createPublisher, type FlowSettings, type Publisher, provisionStreams } from "@tm/flow";
import {
  connect,
  credsAuthenticator,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
  nkeyAuthenticator,
} from "nats";
import type { BaseConfig } from "./config.js";
import { retryWhileJetStreamStarts } from "./jetstream-startup.js";
import type { Logger } from "./logger.js";
import { natsCredsSource, readNatsCreds, watchNatsCredsExpiry } from "./nats-creds.js";
import { readConfigFile, readTlsFiles } from "./tls-files.js";

export interface NatsHandle {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  publisher: Publisher;
  /** Calls `listener` after every reconnect (e.g. to re-issue pull requests the old server took with it). */
  onReconnect(listener: () => void): void;
}

export interface NatsConnectOptions {
  url: string;
  name: string;
  user?: string | undefined;
  password?: string | undefined;
  /** TLS files: the CA to trust, and a client certificate with its key (natsTlsOf). */
  tls?: NatsTlsFiles | undefined;
  /** Instead of user and password: a token, an NKEY seed, or a creds file read at each connection (natsAuthOf). */
  token?: string | undefined;
  nkeySeed?: string | undefined;
  credsFile?: string | undefined;
  /** The prefix of its reply subjects (natsInboxPrefixOf); unset: nats.js's `_INBOX`. */
  inboxPrefix?: string | undefined;
  settings: FlowSettings;
  log: Logger;
  /** Called when the connection closes for good without us closing it (the process should exit). */
  onLost?: (error?: Error) => void;
  /** How often a first connection still being tried is reported (FIRST_CONNECT_WARN_MS). */
  firstConnectWarnMs?: number;
}

/** nats.js retries a first connection silently (waitOnFirstConnect): without a word, a service whose NATS_URL, TLS
 *  files or credentials do not match its server would only look hung at start. */
export const FIRST_CONNECT_WARN_MS = 5_000;

/** Resolves as `connecting` does, warning every `everyMs` until then that NATS is not reached yet. */
export async function warnWhilePending<T>(
  connecting: Promise<T>,
  log: Logger,
  context: { url: string; tls: boolean },
  everyMs = FIRST_CONNECT_WARN_MS,
): Promise<T> {
  const startedAt = Date.now();
  const stillTrying = setInterval(
    () =>
      log.warn(
        { ...context, waitedMs: Date.now() - startedAt },
        "not connected to NATS yet: is it up, and do NATS_URL, its credentials and NATS_TLS_* match its configuration?",
      ),
    everyMs,
  );
  try {
    return await connecting;
  } finally {
    clearInterval(stillTrying);
  }
}

export interface NatsTlsFiles {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

/**
 * The TLS files of a service's configuration (NATS_TLS_CA_FILE, NATS_TLS_CERT_FILE, NATS_TLS_KEY_FILE), checked now
 * (readTlsFiles: readable, PEM, a certificate with its key) so that a wrong file stops the start naming its variable
 * (nats.js would only report it when connecting); undefined when none is set. Paths, not contents, go to nats.js: it
 * reads the files at every (re)connection, so renewed certificates are used without a restart.
 */
export function natsTlsOf(
  config: Pick<BaseConfig, "NATS_TLS_CA_FILE" | "NATS_TLS_CERT_FILE" | "NATS_TLS_KEY_FILE">,
): NatsTlsFiles | undefined {
  const paths = { ca: config.NATS_TLS_CA_FILE, cert: config.NATS_TLS_CERT_FILE, key: config.NATS_TLS_KEY_FILE };
  if (!readTlsFiles("NATS", paths)) return undefined;
  return {
    ...(paths.ca === undefined ? {} : { caFile: paths.ca }),
    ...(paths.cert === undefined ? {} : { certFile: paths.cert }),
    ...(paths.key === undefined ? {} : { keyFile: paths.key }),
  };
}

/** How a service proves who it is to NATS: NATS_USER and NATS_PASSWORD, NATS_TOKEN, NATS_NKEY_SEED_FILE or
 *  NATS_CREDS_FILE (files read and checked now, naming the variable), at most one of them. */
export function natsAuthOf(
  config: Pick<BaseConfig, "NATS_USER" | "NATS_PASSWORD" | "NATS_TOKEN" | "NATS_NKEY_SEED_FILE" | "NATS_CREDS_FILE">,
): Pick<NatsConnectOptions, "user" | "password" | "token" | "nkeySeed" | "credsFile"> {
  const given = (["NATS_USER", "NATS_TOKEN", "NATS_NKEY_SEED_FILE", "NATS_CREDS_FILE"] as const).filter(
    (name) => config[name],
  );
  if (given.length > 1)
    throw new Error(`${given.join(" and ")}: set one way to authenticate to NATS, not ${given.length}`);
  if (config.NATS_TOKEN) return { token: config.NATS_TOKEN };
  if (config.NATS_NKEY_SEED_FILE) return { nkeySeed: readNkeySeed(config.NATS_NKEY_SEED_FILE) };
  if (config.NATS_CREDS_FILE) {
    readNatsCreds(config.NATS_CREDS_FILE);
    return { credsFile: config.NATS_CREDS_FILE };
  }
  return { user: config.NATS_USER, password: config.NATS_PASSWORD };
}

/** NATS_INBOX_PREFIX, else `_INBOX_<NATS_USER>` with a user (the only inbox the rendered permissions let it read),
 *  else nats.js's default. */
export function natsInboxPrefixOf(config: Pick<BaseConfig, "NATS_USER" | "NATS_INBOX_PREFIX">): string | undefined {
  if (config.NATS_INBOX_PREFIX) return config.NATS_INBOX_PREFIX;
  return config.NATS_USER ? `_INBOX_${config.NATS_USER}` : undefined;
}

/** A user's NKEY seed (SU…) from its file: the first line that is one (nsc writes comments around it). */
function readNkeySeed(path: string): string {
  const seed = readConfigFile("NATS_NKEY_SEED_FILE", path)
    .split(/\r?\n/)
    .map((line) => line.trim())
    .find((line) => /^SU[A-Z2-7]{50,}$/.test(line));
  if (!seed) throw new Error(`NATS_NKEY_SEED_FILE: ${path} holds no user seed (a line starting SU)`);
  return seed;
}

export async function connectNats(options: NatsConnectOptions): Promise<NatsHandle> {
  const { log } = options;
  const nc = await warnWhilePending(
    connect({
      servers: options.url.split(",").map((s) => s.trim()),
      name: options.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      reconnectJitter: 100,
      waitOnFirstConnect: true,
      noAsyncTraces: true,
      ...(options.user ? { user: options.user, pass: options.password } : {}),
      ...(options.token ? { token: options.token } : {}),
      ...(options.nkeySeed ? { authenticator: nkeyAuthenticator(new TextEncoder().encode(options.nkeySeed)) } : {}),
      ...(options.credsFile ? { authenticator: credsAuthenticator(natsCredsSource(options.credsFile, log)) } : {}),
      ...(options.tls ? { tls: options.tls } : {}),
      ...(options.inboxPrefix ? { inboxPrefix: options.inboxPrefix } : {}),
    }),
    log,
    { url: options.url, tls: options.tls !== undefined },
    options.firstConnectWarnMs,
  );
  log.info({ server: nc.getServer() }, "connected to NATS");
  if (options.credsFile) {
    const stopWatching = watchNatsCredsExpiry(options.credsFile, log);
    void nc.closed().then(stopWatching);
  }
  const reconnectListeners: Array<() => void> = [];
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect" || status.type === "error")
        log.warn({ nats: status.type, data: String(status.data) }, "NATS connection problem");
      else if (status.type === "reconnect") {
        log.info({ server: String(status.data) }, "reconnected to NATS");
        for (const listener of reconnectListeners) listener();
      }
    }
  })();
  let closing = false;
  const originalClose = nc.close.bind(nc);
  const originalDrain = nc.drain.bind(nc);
  nc.close = () => {
    closing = true;
    return originalClose();
  };
  nc.drain = () => {
    closing = true;
    return originalDrain();
  };
  void nc.closed().then((error) => {
    if (!closing) {
      log.error({ err: error }, "NATS connection closed for good");
      options.onLost?.(error ?? undefined);
    }
  });

  const jsm = await retryWhileJetStreamStarts("reaching JetStream", () => nc.jetstreamManager(), { log });
  await retryWhileJetStreamStarts("provisioning the streams", () => provisionStreams(jsm, options.settings), { log });
  const js = nc.jetstream();
  return {
    nc,
    js,
    jsm,
    publisher: createPublisher(nc, { service: options.name }),
    onReconnect: (listener) => reconnectListeners.push(listener),
  };
}
