/**
 * A TCP proxy on a free loopback port that forwards each new connection to a target port which a test can change:
 * what a DNS name or a Kubernetes Service does for a managed failover. Connections already open keep their old
 * target, as real ones do, so a test sees what a client does when the server it is still connected to changes role.
 */
import { connect, createServer, type Server, type Socket } from "node:net";
import { freePort } from "./ports.js";

export class TcpProxy {
  readonly #connections = new Set<Socket>();
  #target: number;

  readonly server: Server;

  private constructor(
    readonly port: number,
    target: number,
  ) {
    this.#target = target;
    this.server = createServer((client) => this.#forward(client));
  }

  static async start(target: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(await freePort(), target);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once("error", reject);
      proxy.server.listen(proxy.port, "127.0.0.1", () => resolve());
    });
    return proxy;
  }

  get target(): number {
    return this.#target;
  }

  /** Connections opened from now on go to `target`; open ones stay where they are. */
  retarget(target: number): void {
    this.#target = target;
  }

  /** Closes every open connection (both sides), as a network failure would. */
  dropConnections(): void {
    for (const socket of this.#connections) socket.destroy();
  }

  async close(): Promise<void> {
    this.dropConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  #forward(client: Socket): void {
    const upstream = connect(this.#target, "127.0.0.1");
    for (const socket of [client, upstream]) {
      this.#connections.add(socket);
      socket.on("close", () => this.#connections.delete(socket));
      // Either side failing ends the pair, as one broken connection would.
      socket.on("error", () => undefined);
    }
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    client.pipe(upstream).pipe(client);
  }
}
