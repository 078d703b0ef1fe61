/**
 * A real redis-server on a free loopback port with a temporary directory; AOF optional (what production runs, and
 * what makes a restart keep the data).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { findBinary } from "./binaries.js";
import { freePort, waitFor } from "./ports.js";
import { ManagedProcess } from "./process.js";
import type { TlsFiles } from "./tls.js";

export interface RedisServerOptions {
  appendonly?: boolean;
  echo?: boolean;
  /** Start as a replica of the redis-server on this loopback port. */
  replicaOf?: number;
  /** Also listen for TLS (on `tlsPort`) with this server certificate; clients need not present one, unless
   *  `tlsAuthClients` (then one signed by the same CA). */
  tls?: TlsFiles;
  tlsAuthClients?: boolean;
}

/** redis-server's (and Sentinel's) TLS arguments: a TLS port beside the plain one, clients not asked for a certificate,
 *  and TLS for its own connections to other servers (a Sentinel's to the primary it watches). */
function tlsArgs(tls: TlsFiles, tlsPort: number, authClients = false): string[] {
  return [
    "--tls-port",
    String(tlsPort),
    "--tls-cert-file",
    tls.certFile,
    "--tls-key-file",
    tls.keyFile,
    "--tls-ca-cert-file",
    tls.caFile,
    "--tls-auth-clients",
    authClients ? "yes" : "no",
    "--tls-replication",
    "yes",
  ];
}

export class RedisServer {
  readonly process: ManagedProcess;
  constructor(
    readonly port: number,
    readonly dir: string,
    appendonly: boolean,
    echo: boolean,
    replicaOf?: number,
    /** With TLS: the port it listens on for TLS (the plain `port` stays open, for the kit's own checks). */
    readonly tlsPort?: number,
    tls?: TlsFiles,
    tlsAuthClients = false,
  ) {
    this.process = new ManagedProcess({
      name: `redis:${port}`,
      command: findBinary("redis-server"),
      args: [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        dir,
        "--save",
        "",
        "--appendonly",
        appendonly ? "yes" : "no",
        "--appendfsync",
        "everysec",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        // A replica's first full sync would otherwise wait 5 s for more replicas to share it.
        "--repl-diskless-sync-delay",
        "0",
        ...(replicaOf === undefined ? [] : ["--replicaof", "127.0.0.1", String(replicaOf)]),
        ...(tls && tlsPort !== undefined ? tlsArgs(tls, tlsPort, tlsAuthClients) : []),
      ],
      echo,
    });
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** The TLS address (`rediss://`), when started with `tls`. */
  get tlsUrl(): string {
    if (this.tlsPort === undefined) throw new Error(`redis:${this.port} was started without tls`);
    return `rediss://127.0.0.1:${this.tlsPort}`;
  }

  async start(timeoutMs = 15_000): Promise<this> {
    this.process.start();
    await waitFor(
      `redis-server on ${this.port}`,
      async () => {
        if (!this.process.running) throw new Error(`redis-server exited:\n${this.process.tail()}`);
        const client = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
        client.on("error", () => undefined); // a refused connection while starting is expected
        try {
          await client.connect();
          if ((await client.ping()) !== "PONG") return false;
          // The server answering must be ours: another redis-server on this port (a port taken between freePort() and
          // this one's bind) would answer PING too, and the test would run against another test's data.
          const pid = Number(/process_id:(\d+)/.exec(await client.info("server"))?.[1]);
          if (pid !== this.process.child?.pid)
            throw new Error(`port ${this.port} is answered by another redis-server (pid ${pid})`);
          return true;
        } finally {
          client.disconnect();
        }
      },
      { timeoutMs },
    );
    return this;
  }

  stop(): Promise<void> {
    return this.process.stop();
  }

  kill(): Promise<void> {
    return this.process.kill();
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async dispose(): Promise<void> {
    await this.process.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), "tm-redis-"));
  const port = await freePort();
  const tlsPort = options.tls ? await freePort() : undefined;
  return new RedisServer(
    port,
    dir,
    options.appendonly ?? false,
    !!options.echo,
    options.replicaOf,
    tlsPort,
    options.tls,
    options.tlsAuthClients,
  ).start();
}

/** How many WAIT commands the server has run (INFO commandstats): whether a code path asked its replicas. */
export async function waitCommandCalls(client: Redis): Promise<number> {
  return Number(/cmdstat_wait:calls=(\d+)/.exec(await client.info("commandstats"))?.[1] ?? 0);
}

/**
 * Waits until `count` replicas of `primary` are online: past their first full sync, acknowledging its writes (a
 * replica merely connected is counted by `connected_slaves` but cannot answer WAIT yet).
 */
export async function waitForReplicas(primary: RedisServer, count: number, timeoutMs = 15_000): Promise<void> {
  const client = new Redis(primary.url, { maxRetriesPerRequest: 1 });
  client.on("error", () => undefined);
  try {
    await waitFor(
      `${count} replica(s) of redis:${primary.port} online`,
      async () => ((await client.info("replication")).match(/^slave\d+:.*state=online/gm) ?? []).length >= count,
      { timeoutMs },
    );
  } finally {
    client.disconnect();
  }
}

/**
 * A Redis Sentinel (redis-server --sentinel) on a free loopback port watching one primary, with a short down-after
 * so that a failover happens within a test's patience. One Sentinel is a quorum of one: enough to test a client's
 * failover, not a production layout (three Sentinels on three machines).
 */
/** An ACL user a Sentinel requires of its clients (its user default turned off). */
export interface SentinelAuth {
  username: string;
  password: string;
}

export class RedisSentinel {
  readonly process: ManagedProcess;
  constructor(
    readonly port: number,
    readonly dir: string,
    readonly master: string,
    primaryPort: number,
    echo: boolean,
    readonly auth?: SentinelAuth,
    /** With TLS: the port it listens on for TLS, and it reaches the primary over TLS (`primaryPort` is its TLS one). */
    readonly tls?: { files: TlsFiles; port: number },
  ) {
    const config = join(dir, "sentinel.conf"); // Sentinel rewrites its file as it learns the topology.
    writeFileSync(
      config,
      [
        `port ${port}`,
        "bind 127.0.0.1",
        `dir ${dir}`,
        `sentinel monitor ${master} 127.0.0.1 ${primaryPort} 1`,
        `sentinel down-after-milliseconds ${master} 1000`,
        // Also the wait before a second failover of the same primary (twice this): a test may make two.
        `sentinel failover-timeout ${master} 2000`,
        ...(auth ? ["user default off", `user ${auth.username} on >${auth.password} ~* &* +@all`] : []),
        // Sentinel reads its TLS settings from its file: the same words as redis-server's arguments, without "--".
        ...(tls ? pairs(tlsArgs(tls.files, tls.port)) : []),
        "",
      ].join("\n"),
    );
    this.process = new ManagedProcess({
      name: `redis-sentinel:${port}`,
      command: findBinary("redis-server"),
      args: [config, "--sentinel"],
      echo,
    });
  }

  get address(): { host: string; port: number } {
    return { host: "127.0.0.1", port: this.port };
  }

  /** Its TLS address, when started with `tls`. */
  get tlsAddress(): { host: string; port: number } {
    if (!this.tls) throw new Error(`redis-sentinel:${this.port} was started without tls`);
    return { host: "127.0.0.1", port: this.tls.port };
  }

  /** A client's options for this Sentinel: its user, when it requires one. */
  #clientOptions() {
    return this.auth ? { username: this.auth.username, password: this.auth.password } : {};
  }

  /** The port of the primary this Sentinel names now. */
  async primaryPort(): Promise<number> {
    const client = new Redis(this.port, "127.0.0.1", {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      ...this.#clientOptions(),
    });
    client.on("error", () => undefined);
    try {
      await client.connect();
      const reply = (await client.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", this.master)) as string[] | null;
      return Number(reply?.[1]);
    } finally {
      client.disconnect();
    }
  }

  /** Sentinel's forced failover (no agreement asked): promotes a replica, then demotes the old primary. */
  async failover(): Promise<void> {
    const client = new Redis(this.port, "127.0.0.1", { maxRetriesPerRequest: 0, ...this.#clientOptions() });
    try {
      await client.call("SENTINEL", "FAILOVER", this.master);
    } finally {
      client.disconnect();
    }
  }

  async start(timeoutMs = 15_000): Promise<this> {
    this.process.start();
    await waitFor(
      `redis-sentinel on ${this.port}`,
      async () => {
        if (!this.process.running) throw new Error(`redis-sentinel exited:\n${this.process.tail()}`);
        return (await this.primaryPort().catch(() => 0)) > 0;
      },
      { timeoutMs },
    );
    return this;
  }

  async dispose(): Promise<void> {
    await this.process.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Starts a Sentinel watching `primary`. With `tls`, the Sentinel also listens for TLS and watches the primary's TLS
 * port over TLS (the primary must have been started with the same files), so the primary it names is a TLS address.
 */
export async function startRedisSentinel(
  primary: RedisServer,
  options: { master?: string; echo?: boolean; auth?: SentinelAuth; tls?: TlsFiles } = {},
): Promise<RedisSentinel> {
  const dir = mkdtempSync(join(tmpdir(), "tm-sentinel-"));
  const { master = "mymaster", echo = false, auth } = options;
  const tls = options.tls ? { files: options.tls, port: await freePort() } : undefined;
  const watched = tls ? primary.tlsPort! : primary.port;
  return new RedisSentinel(await freePort(), dir, master, watched, echo, auth, tls).start();
}

/** ["--a", "1", "--b", "2"] as config lines "a 1", "b 2". */
function pairs(args: string[]): string[] {
  const lines: string[] = [];
  for (let i = 0; i < args.length; i += 2) lines.push(`${args[i]!.replace(/^--/, "")} ${args[i + 1]}`);
  return lines;
}
