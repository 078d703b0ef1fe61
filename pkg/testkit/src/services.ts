/**
 * Runs a built service (services/<name>/dist/bundle/index.js, its start script's entry) as its own process, the way it is deployed, on free ports,
 * and waits until its /readyz answers 200. Fault tests kill (SIGKILL) or stop (SIGTERM) and restart these.
 * Requires `pnpm build` first (scripts/test.sh does it).
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./ports.js";
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
  const service = await spawnOnce(name, env, options);
  if (options.waitReady === false) return service;
  return readyOrRespawn(service, () => spawnOnce(name, env, options));
}

/**
 * Waits until `service` is ready and returns it. A port from freePort() is free when chosen, not when the service
 * binds it: in between, another process's outgoing connection (or this service's own, to NATS or Redis) can take it
 * as its local port. A service that exits at start-up because its port is in use is therefore started again with
 * `respawn` (on new ports; a few times), and the service that became ready is returned. For a caller that spawned
 * with `waitReady: false`, `respawn` must not change a port the caller has already handed on.
 */
export async function readyOrRespawn<T extends Pick<SpawnedService, "process" | "ready">>(
  service: T,
  respawn: () => Promise<T>,
  timeoutMs?: number,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      await service.ready(timeoutMs);
      return service;
    } catch (error) {
      if (!exitedForTakenPort(service) || attempt >= 3) throw error;
      // Said, with who holds the port, so that a run where this happens shows which process took it.
      const port = /(\d+) is already in use|EADDRINUSE[^\d]*(\d+)/.exec(service.process.tail());
      const taken = port ? Number(port[1] ?? port[2]) : undefined;
      console.warn(
        `[testkit] ${service.process.options.name}: port ${taken ?? "?"} was taken before it bound it; starting it again` +
          (taken ? ` (holders now: ${portHolders(taken)})` : ""),
      );
      service = await respawn();
    }
  }
}

/** The sockets on local `port` with their processes, as `ss` lists them ("none" or "unknown" otherwise). */
function portHolders(port: number): string {
  try {
    const lines = execFileSync("ss", ["-Htanp", `( sport = :${port} )`], { encoding: "utf8", timeout: 2_000 })
      .trim()
      .split("\n")
      .filter(Boolean);
    return lines.length ? lines.map((line) => line.replace(/\s+/g, " ")).join("; ") : "none";
  } catch {
    return "unknown (ss failed)";
  }
}

/** Whether the service exited at start-up because one of its ports was taken (starting it again may help). */
export function exitedForTakenPort(service: Pick<SpawnedService, "process">): boolean {
  return !service.process.running && /already in use|EADDRINUSE/.test(service.process.tail());
}

async function spawnOnce(name: string, env: NodeJS.ProcessEnv, options: { echo?: boolean }): Promise<SpawnedService> {
  const cwd = join(REPO_ROOT, "services", name);
  const entry = join(cwd, serviceEntryOf(cwd));
  if (!existsSync(entry)) throw new Error(`${entry} does not exist: run \`pnpm build\` first`);
  const opsPort = await freePort();
  const fullEnv: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: "warn", OTEL_SERVICE_NAME: name, ...env };
  // TM_TEST_DEBUG=result-store,worker: those services log at debug (each delivery handled), for reading a failure.
  if ((process.env.TM_TEST_DEBUG ?? "").split(",").includes(name)) fullEnv.LOG_LEVEL = "debug";
  let port = opsPort;
  if (API_PORT_SERVICES.has(name)) fullEnv.PORT = String(opsPort);
  else fullEnv.OPS_PORT = String(opsPort);
  if (name === "gateway") {
    port = env.GRPC_PORT ? Number(env.GRPC_PORT) : await freePort();
    fullEnv.GRPC_PORT = String(port);
    // The web console port too: gateways of parallel tests must not all take the default 8090.
    fullEnv.GATEWAY_WEB_PORT = env.GATEWAY_WEB_PORT ?? "0";
  }
  const child = serviceProcess(name, cwd, fullEnv, options.echo);
  const service: SpawnedService = {
    name,
    process: child,
    opsPort,
    port,
    env: fullEnv,
    // Generous: nine services starting at once on two busy cores can take well over 20 s to listen. A service that
    // exits meanwhile fails the wait at once, with its last lines.
    ready: (timeoutMs = 60_000) => waitForReadyz(name, child, opsPort, timeoutMs),
    async restart() {
      await child.stop();
      child.start();
      await service.ready();
    },
  };
  child.start();
  return service;
}

export interface SpawnedCombined {
  process: ManagedProcess;
  env: NodeJS.ProcessEnv;
  /** Per service in the process: where its ops routes answer and its main port (as SpawnedService has them). */
  services: Record<string, { opsPort: number; port: number }>;
  /** Resolves when every service's /readyz answers 200. */
  ready(timeoutMs?: number): Promise<void>;
}

/**
 * Runs services/combined (several services in one process, TM_SERVICES) on free ports: each service's ports are
 * given as its own overrides (`NOTIFIER__OPS_PORT`, `RESULT_STORE__PORT`, `GATEWAY__GRPC_PORT`, ...). Resolves once
 * every one of them is ready, or at once with `waitReady: false` (its ports are known before it starts).
 * `perService` is each service's own environment (as spawnService's `env`), given as `<SERVICE>__<VAR>` overrides; a
 * port set there (PORT or OPS_PORT, GRPC_PORT) is kept rather than chosen, as spawnService keeps a GRPC_PORT.
 */
export async function spawnCombined(
  names: readonly string[],
  env: NodeJS.ProcessEnv,
  options: { echo?: boolean; waitReady?: boolean; perService?: Record<string, NodeJS.ProcessEnv> } = {},
): Promise<SpawnedCombined> {
  const cwd = join(REPO_ROOT, "services", "combined");
  const entry = join(cwd, serviceEntryOf(cwd));
  if (!existsSync(entry)) throw new Error(`${entry} does not exist: run \`pnpm build\``);
  const fullEnv: NodeJS.ProcessEnv = {
    ...process.env,
    LOG_LEVEL: "warn",
    OTEL_SERVICE_NAME: "combined",
    ...env,
    TM_SERVICES: names.join(","),
  };
  const services: SpawnedCombined["services"] = {};
  const debug = (process.env.TM_TEST_DEBUG ?? "").split(",");
  for (const name of names) {
    const prefix = `${name.toUpperCase().replaceAll("-", "_")}__`;
    const own = options.perService?.[name] ?? {};
    for (const [variable, value] of Object.entries(own)) fullEnv[`${prefix}${variable}`] = value;
    if (debug.includes(name)) fullEnv[`${prefix}LOG_LEVEL`] = "debug"; // as spawnService does
    const opsKey = API_PORT_SERVICES.has(name) ? "PORT" : "OPS_PORT";
    const opsPort = own[opsKey] ? Number(own[opsKey]) : await freePort();
    let port = opsPort;
    fullEnv[`${prefix}${opsKey}`] = String(opsPort);
    if (name === "gateway") {
      port = own.GRPC_PORT ? Number(own.GRPC_PORT) : await freePort();
      fullEnv[`${prefix}GRPC_PORT`] = String(port);
      fullEnv[`${prefix}GATEWAY_WEB_PORT`] = own.GATEWAY_WEB_PORT ?? "0";
    }
    services[name] = { opsPort, port };
  }
  // Ingest and the enricher together: ingest calls the enricher of its own process unless told otherwise.
  const enricherPort = services.enricher?.port;
  if (services.ingest && enricherPort && !fullEnv.INGEST__ENRICHER_URL && !fullEnv.ENRICHER_URL) {
    fullEnv.INGEST__ENRICHER_URL = `http://127.0.0.1:${enricherPort}`;
  }
  const child = serviceProcess("combined", cwd, fullEnv, options.echo);
  child.start();
  const spawned: SpawnedCombined = {
    process: child,
    env: fullEnv,
    services,
    async ready(timeoutMs = 60_000) {
      await Promise.all(
        Object.entries(services).map(([name, { opsPort }]) => waitForReadyz(name, child, opsPort, timeoutMs)),
      );
    },
  };
  if (options.waitReady !== false) await spawned.ready();
  return spawned;
}

/**
 * Polls /readyz until the service in `child` answers 200; fails at once, with its last lines, if the process exited
 * meanwhile. An answer from another process (its pid in the body) does not count.
 */
export async function waitForReadyz(
  name: string,
  child: ManagedProcess,
  opsPort: number,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    if (!child.running) throw new Error(`${name} exited (code ${child.child?.exitCode}):\n${child.tail()}`);
    try {
      const response = await fetch(`http://127.0.0.1:${opsPort}/readyz`);
      const answeredBy = pidIn(await response.text());
      // Another process on the port (this one about to exit with "port in use") must not pass for it. Under a
      // wrapper the service may run in a process of its own, so only an unwrapped child's pid is checked.
      if (answeredBy !== undefined && answeredBy !== child.pid && !process.env.TM_SERVICE_WRAPPER) {
        lastError = new Error(`/readyz on port ${opsPort} answered by another process (pid ${answeredBy})`);
      } else if (response.status === 200) {
        return;
      } else {
        lastError = new Error(`/readyz answered ${response.status}`);
      }
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${name} /readyz (last error: ${(lastError as Error)?.message})`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The pid a service's /readyz reports (pkg/kit ops-server), if the body is one. */
function pidIn(body: string): number | undefined {
  try {
    const pid = (JSON.parse(body) as { pid?: unknown } | null)?.pid;
    return typeof pid === "number" ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** A service package run by its package.json start script, exactly as deployed. */
function serviceProcess(name: string, cwd: string, env: NodeJS.ProcessEnv, echo: boolean | undefined): ManagedProcess {
  return new ManagedProcess({
    name,
    ...underWrapper([process.execPath, ...nodeArgsFromEnv(), ...startArgsOf(cwd)]),
    cwd,
    env,
    echo: echo ?? !!process.env.TM_TEST_ECHO,
    keepLines: 500,
  });
}

/**
 * The command and arguments that run `argv`: as they are, or under the program TM_SERVICE_WRAPPER names with its
 * arguments (e.g. "valgrind --tool=callgrind ...", for `pnpm bench --drain SERVICE --instructions`). The wrapper must
 * run its program in its own process (valgrind does), so that the spawned pid is the service's.
 */
export function underWrapper(argv: string[]): { command: string; args: string[] } {
  const wrapper = (process.env.TM_SERVICE_WRAPPER ?? "").split(/\s+/).filter(Boolean);
  const [command = "", ...args] = [...wrapper, ...argv];
  return { command, args };
}

// TM_SERVICE_NODE_ARGS adds node flags to every spawned service, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" for
// profiling under the benchmark (NODE_OPTIONS does not accept --cpu-prof).
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

/** The script a service's start script runs (its last argument, relative to the service's directory), e.g.
 *  dist/bundle/index.js: what must be built before the service can be spawned. */
export function serviceEntryOf(serviceDir: string): string {
  const entry = startArgsOf(serviceDir).at(-1);
  if (!entry?.endsWith(".js")) throw new Error(`${serviceDir}/package.json: the start script must end with a .js file`);
  return entry;
}
