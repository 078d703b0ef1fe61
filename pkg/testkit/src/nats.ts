/**
 * A real nats-server with JetStream on a free loopback port and a temporary store directory. It can be stopped,
 * killed and restarted on the same port and store (fault tests), and clustered (R3 tests).
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ConnectionOptions, connect } from "nats";
import { findBinary } from "./binaries.js";
import { freePort, waitFor } from "./ports.js";
import { ManagedProcess } from "./process.js";

export interface NatsServerOptions {
  /** Extra configuration text (e.g. an authorization block) appended to the generated config. */
  extraConfig?: string;
  /** Credentials the readiness check connects with (when extraConfig enables authorization or TLS). */
  readyAuth?: Pick<ConnectionOptions, "user" | "pass" | "token" | "tls" | "authenticator" | "inboxPrefix">;
  echo?: boolean;
}

export class NatsServer {
  readonly process: ManagedProcess;
  constructor(
    readonly port: number,
    readonly monitorPort: number,
    readonly storeDir: string,
    readonly configFile: string,
    private readonly readyAuth: NatsServerOptions["readyAuth"],
    echo: boolean,
    private readonly ownedDir: string,
    /** Its configured server_name, checked at readiness (unset: not checked, as for cluster nodes). */
    private readonly serverName?: string,
  ) {
    this.process = new ManagedProcess({
      name: `nats:${port}`,
      command: findBinary("nats-server"),
      args: ["-c", configFile],
      echo,
    });
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.process.start();
    await this.ready();
    return this;
  }

  /** Waits until JetStream answers API calls. */
  async ready(timeoutMs = 20_000): Promise<void> {
    await waitFor(
      `nats-server on ${this.port} with JetStream`,
      async () => {
        if (!this.process.running) throw new Error(`nats-server exited:\n${this.process.tail()}`);
        const nc = await connect({ servers: this.url, reconnect: false, timeout: 1_000, ...this.readyAuth });
        try {
          // The server answering must be ours: another nats-server on this port (a port taken between freePort() and
          // this one's bind) would answer too, and the test's services would share another test's streams.
          const name = nc.info?.server_name;
          if (this.serverName && name !== this.serverName)
            throw new Error(`port ${this.port} is answered by another nats-server (${name})`);
          const jsm = await nc.jetstreamManager({ timeout: 1_000 });
          await jsm.getAccountInfo();
          return true;
        } finally {
          await nc.close();
        }
      },
      { timeoutMs, intervalMs: 50 },
    );
  }

  /** Graceful stop (SIGTERM). */
  stop(): Promise<void> {
    return this.process.stop();
  }

  /** Crash (SIGKILL). */
  kill(): Promise<void> {
    return this.process.kill();
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Stops the server and deletes its store. */
  async dispose(): Promise<void> {
    await this.process.kill();
    rmSync(this.ownedDir, { recursive: true, force: true });
  }
}

export async function startNats(options: NatsServerOptions = {}): Promise<NatsServer> {
  const dir = mkdtempSync(join(tmpdir(), "tm-nats-"));
  const port = await freePort();
  const monitorPort = await freePort();
  const name = `tm-test-${port}-${randomUUID().slice(0, 8)}`;
  const storeDir = join(dir, "store");
  const configFile = join(dir, "nats.conf");
  writeFileSync(
    configFile,
    [
      `server_name: "${name}"`,
      `listen: "127.0.0.1:${port}"`,
      `http: "127.0.0.1:${monitorPort}"`,
      `jetstream { store_dir: "${storeDir}", max_memory_store: 256MB, max_file_store: 2GB }`,
      options.extraConfig ?? "",
    ].join("\n"),
  );
  const server = new NatsServer(port, monitorPort, storeDir, configFile, options.readyAuth, !!options.echo, dir, name);
  return server.start();
}

/** A JetStream cluster of `size` nodes routed over loopback, each with its own store. */
export class NatsCluster {
  constructor(
    readonly nodes: NatsServer[],
    private readonly dir: string,
  ) {}

  get urls(): string[] {
    return this.nodes.map((n) => n.url);
  }

  async dispose(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.process.kill()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function startNatsCluster(size = 3, options: { echo?: boolean } = {}): Promise<NatsCluster> {
  const dir = mkdtempSync(join(tmpdir(), "tm-nats-cluster-"));
  const ports = await Promise.all(
    Array.from({ length: size }, async () => [await freePort(), await freePort(), await freePort()] as const),
  );
  const routes = ports.map(([, , routePort]) => `nats-route://127.0.0.1:${routePort}`);
  const nodes = ports.map(([port, monitorPort, routePort], i) => {
    const storeDir = join(dir, `n${i}`, "store");
    const configFile = join(dir, `n${i}.conf`);
    writeFileSync(
      configFile,
      [
        `server_name: "n${i}"`,
        `listen: "127.0.0.1:${port}"`,
        `http: "127.0.0.1:${monitorPort}"`,
        `jetstream { store_dir: "${storeDir}", max_memory_store: 256MB, max_file_store: 2GB }`,
        `cluster { name: "tm", listen: "127.0.0.1:${routePort}", routes: [${routes.map((r) => `"${r}"`).join(", ")}] }`,
      ].join("\n"),
    );
    return new NatsServer(port, monitorPort, storeDir, configFile, undefined, !!options.echo, join(dir, `n${i}`));
  });
  for (const node of nodes) node.process.start();
  await Promise.all(nodes.map((n) => n.ready(60_000)));
  return new NatsCluster(nodes, dir);
}
