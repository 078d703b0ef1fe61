/**
 * A real redis-server on a free loopback port with a temporary directory; AOF optional (what production runs, and
 * what makes a restart keep the data).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { findBinary } from "./binaries.js";
import { freePort, waitFor } from "./ports.js";
import { ManagedProcess } from "./process.js";

export interface RedisServerOptions {
  appendonly?: boolean;
  echo?: boolean;
}

export class RedisServer {
  readonly process: ManagedProcess;
  constructor(
    readonly port: number,
    readonly dir: string,
    appendonly: boolean,
    echo: boolean,
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
  return new RedisServer(port, dir, options.appendonly ?? false, !!options.echo).start();
}
