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

export interface RedisServerOptions {
  appendonly?: boolean;
  echo?: boolean;
  /** Start as a replica of the redis-server on this loopback port. */
  replicaOf?: number;
}

export class RedisServer {
  readonly process: ManagedProcess;
  constructor(
    readonly port: number,
    readonly dir: string,
    appendonly: boolean,
    echo: boolean,
    replicaOf?: number,
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
      ],
      echo,
    });
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
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
  return new RedisServer(port, dir, options.appendonly ?? false, !!options.echo, options.replicaOf).start();
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

export async function startRedisSentinel(
  primary: RedisServer,
  options: { master?: string; echo?: boolean; auth?: SentinelAuth } = {},
): Promise<RedisSentinel> {
  const dir = mkdtempSync(join(tmpdir(), "tm-sentinel-"));
  const { master = "mymaster", echo = false, auth } = options;
  return new RedisSentinel(await freePort(), dir, master, primary.port, echo, auth).start();
}
