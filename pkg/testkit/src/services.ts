/**
 * Runs a built service (services/<name>/dist/index.js) as its own process, the way it is deployed, on free ports,
 * and waits until its /readyz answers 200. Fault tests kill (SIGKILL) or stop (SIGTERM) and restart these.
 * Requires `pnpm build` first (scripts/test.sh does it).
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, waitFor } from "./ports.js";
import { ManagedProcess } from "./process.js";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** Services whose ops routes live on their API port (PORT) rather than OPS_PORT. */
const API_PORT_SERVICES = new Set(["enricher", "result-store"]);

export interface SpawnedService {
  name: string;
  process: ManagedProcess;
  /** Where /healthz, /readyz and /metrics answer. */
  opsPort: number;
  /** The service's main port: gRPC for the gateway, HTTP for enricher and result-store. */
  port: number;
  env: NodeJS.ProcessEnv;
  ready(timeoutMs?: number): Promise<void>;
  restart(): Promise<void>;
}

export async function spawnService(
  name: string,
  env: NodeJS.ProcessEnv,
  options: { echo?: boolean; waitReady?: boolean } = {},
): Promise<SpawnedService> {
  const cwd = join(REPO_ROOT, "services", name);
  const entry = join(cwd, "dist", "index.js");
  if (!existsSync(entry)) throw new Error(`${entry} does not exist: run \`pnpm build\` first`);
  const opsPort = await freePort();
  const fullEnv: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: "warn", OTEL_SERVICE_NAME: name, ...env };
  let port = opsPort;
  if (API_PORT_SERVICES.has(name)) fullEnv.PORT = String(opsPort);
  else fullEnv.OPS_PORT = String(opsPort);
  if (name === "gateway") {
    port = env.GRPC_PORT ? Number(env.GRPC_PORT) : await freePort();
    fullEnv.GRPC_PORT = String(port);
    // The web console port too: gateways of parallel tests must not all take the default 8090.
    fullEnv.GATEWAY_WEB_PORT = env.GATEWAY_WEB_PORT ?? "0";
  }
  const child = new ManagedProcess({
    name,
    command: process.execPath,
    // TM_SERVICE_NODE_ARGS adds node flags to every spawned service, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
    // for profiling under the benchmark (NODE_OPTIONS does not accept --cpu-prof).
    args: [...nodeArgsFromEnv(), ...startArgsOf(cwd)],
    cwd,
    env: fullEnv,
    echo: options.echo ?? !!process.env.TM_TEST_ECHO,
    keepLines: 500,
  });
  const service: SpawnedService = {
    name,
    process: child,
    opsPort,
    port,
    env: fullEnv,
    // Generous: nine services starting at once on two busy cores can take well over 20 s to listen.
    async ready(timeoutMs = 60_000) {
      await waitFor(
        `${name} /readyz`,
        async () => {
          if (!child.running) throw new Error(`${name} exited (code ${child.child?.exitCode}):\n${child.tail()}`);
          const response = await fetch(`http://127.0.0.1:${opsPort}/readyz`);
          return response.status === 200;
        },
        { timeoutMs, intervalMs: 50 },
      );
    },
    async restart() {
      await child.stop();
      child.start();
      await service.ready();
    },
  };
  child.start();
  if (options.waitReady !== false) await service.ready();
  return service;
}

function nodeArgsFromEnv(): string[] {
  return (process.env.TM_SERVICE_NODE_ARGS ?? "").split(/\s+/).filter(Boolean);
}

/** The node arguments of a service's package.json start script ("node <args>"): spawned exactly as deployed. */
export function startArgsOf(serviceDir: string): string[] {
  const start = JSON.parse(readFileSync(join(serviceDir, "package.json"), "utf8"))?.scripts?.start;
  const [command, ...args] = String(start ?? "")
    .split(/\s+/)
    .filter(Boolean);
  if (command !== "node") throw new Error(`${serviceDir}/package.json: the start script must be "node <args>"`);
  return args;
}
