#!/usr/bin/env node
/**
 * `pnpm start` (after `pnpm build`): the whole pipeline on this machine, no Docker. Starts nats-server (JetStream)
 * and redis-server unless NATS_URL / REDIS_URL point at running ones, then every service as its own process with
 * prefixed logs, restarts a crashed service with exponential backoff (and reports when it is ready again), waits
 * until each is ready, runs the taskctl demo and stays up until Ctrl-C, then stops everything in reverse order.
 *
 * Environment: NATS_URL, REDIS_URL (use existing servers), LOG_LEVEL (default info), STACK_RAW_LOGS=1 (print the
 * services' JSON logs as they are), STACK_NO_DEMO=1 (skip the demo), STACK_EXIT_AFTER_DEMO=1 (stop after the demo
 * and exit with its exit code; the smoke test uses it). Anything else (OTEL_EXPORTER_OTLP_ENDPOINT, FLOW_*, ...)
 * is passed through to the services.
 */
import { spawn } from "node:child_process";
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import {
  afterCrash,
  choosePort,
  formatLogLine,
  levelName,
  levelRank,
  notReadyAgainMessage,
  parseLogLine,
  portConflicts,
  readyAgainMessage,
  SERVICES,
  servicePrefix,
} from "./lib/stack-lib.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const env = process.env;
const colour = Boolean(process.stdout.isTTY) && !env.NO_COLOR;
const rawLogs = env.STACK_RAW_LOGS === "1";
const NAME_WIDTH = Math.max(...SERVICES.map((service) => service.name.length), "taskctl".length);
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;
const GATEWAY_ADDR = "http://127.0.0.1:50051";

/** Raised for problems the user can fix; printed without a stack trace. */
class StackError extends Error {}

/** @type {{ name: string, child: import("node:child_process").ChildProcess, tail: string[] }[]} */
const infra = [];
/** @type {Map<string, Supervised>} */
const supervised = new Map();
let stopping = false;
/** While the demo draws its live view, info lines are dropped and warnings held, so they do not tear it. */
let holdLogs = false;
/** @type {string[]} */
let heldLines = [];
let droppedLines = 0;
const tempDirs = [];

function say(text) {
  process.stdout.write(`${servicePrefix("stack", { colour, width: NAME_WIDTH, index: SERVICES.length })}${text}\n`);
}

function findBinary(name) {
  for (const dir of [...(env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin", "/sbin"]) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new StackError(
    `${name} was not found on PATH or in /usr/sbin. Install it: bash scripts/setup.sh, or ` +
      `apt-get install -y nats-server redis-server (or set ${name === "nats-server" ? "NATS_URL" : "REDIS_URL"} ` +
      "to a running server)",
  );
}

/** Polls every 250 ms until `check` resolves true or `timeoutMs` passes (start-up and readiness after a restart). */
async function until(what, check, timeoutMs, isDead = () => undefined) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const dead = isDead();
    if (dead) throw new StackError(`${what}: ${dead}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new StackError(`${what}: not ready after ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function tcpAnswers(port, probe, expected) {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    let received = "";
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.on("error", () => done(false));
    socket.on("connect", () => (probe ? socket.write(probe) : undefined));
    socket.on("data", (chunk) => {
      received += chunk;
      if (received.includes(expected)) done(true);
    });
  });
}

async function startInfra(name, binary, args, port, probe, expected) {
  const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
  const entry = { name, child, tail: [] };
  infra.push(entry);
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on("line", (line) => {
      entry.tail.push(line);
      if (entry.tail.length > 30) entry.tail.shift();
    });
  }
  child.on("exit", (code, signal) => {
    if (!stopping) say(`${name} exited unexpectedly (${signal ?? `code ${code}`}):\n${entry.tail.join("\n")}`);
  });
  await until(
    `${name} on port ${port}`,
    () => tcpAnswers(port, probe, expected),
    15_000,
    () => (child.exitCode !== null ? `it exited:\n${entry.tail.join("\n")}` : undefined),
  );
}

async function startNats() {
  if (env.NATS_URL) return env.NATS_URL;
  const binary = findBinary("nats-server");
  const port = await choosePort(4222);
  if (port !== 4222) say(`port 4222 is taken: nats-server uses ${port} instead`);
  const storeDir = mkdtempSync(join(tmpdir(), "tm-stack-nats-"));
  tempDirs.push(storeDir);
  await startInfra(
    "nats-server",
    binary,
    ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir],
    port,
    "",
    "INFO",
  );
  say(`nats-server (JetStream) on 127.0.0.1:${port}`);
  return `nats://127.0.0.1:${port}`;
}

async function startRedis() {
  if (env.REDIS_URL) return env.REDIS_URL;
  const binary = findBinary("redis-server");
  const port = await choosePort(6379);
  if (port !== 6379) say(`port 6379 is taken: redis-server uses ${port} instead`);
  const dir = mkdtempSync(join(tmpdir(), "tm-stack-redis-"));
  tempDirs.push(dir);
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir];
  await startInfra("redis-server", binary, args, port, "PING\r\n", "+PONG");
  say(`redis-server on 127.0.0.1:${port}`);
  return `redis://127.0.0.1:${port}`;
}

/** One service process, restarted with backoff when it crashes. */
class Supervised {
  /** @type {import("node:child_process").ChildProcess | undefined} */
  child;
  crashes = 0;
  startedAt = 0;
  /** @type {NodeJS.Timeout | undefined} */
  restartTimer;
  tail = [];

  constructor(spec, index, serviceEnv) {
    this.spec = spec;
    this.index = index;
    this.env = serviceEnv;
    this.cwd = join(root, "services", spec.name);
    this.prefix = servicePrefix(spec.name, { colour, width: NAME_WIDTH, index });
  }

  start() {
    this.startedAt = Date.now();
    // Exactly as deployed: the node arguments of the service's package.json start script.
    const child = spawn(process.execPath, startArgsOf(this.cwd), {
      cwd: this.cwd,
      env: this.env,
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group: Ctrl-C reaches only this script, which then stops services in order.
      detached: true,
    });
    this.child = child;
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on("line", (line) => this.log(line));
    }
    child.on("exit", (code, signal) => this.onExit(code, signal));
  }

  log(line) {
    this.tail.push(line);
    if (this.tail.length > 20) this.tail.shift();
    const text = `${this.prefix}${formatLogLine(line, { colour, raw: rawLogs })}\n`;
    if (!holdLogs) return void process.stdout.write(text);
    const entry = parseLogLine(line);
    if (entry && levelRank(levelName(entry.level)) < 40) droppedLines++;
    else heldLines.push(text);
  }

  onExit(code, signal) {
    this.child = undefined;
    if (stopping) return;
    const uptimeMs = Date.now() - this.startedAt;
    const { crashes, delayMs } = afterCrash(this.crashes, uptimeMs);
    this.crashes = crashes;
    say(
      `${this.spec.name} exited (${signal ?? `code ${code}`}) after ${(uptimeMs / 1000).toFixed(1)} s; ` +
        `restarting in ${delayMs / 1000} s (crash ${crashes} in a row)`,
    );
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (stopping) return;
      this.start();
      this.reportReadyAgain();
    }, delayMs);
  }

  get readyUrl() {
    return `http://127.0.0.1:${this.spec.readyPort}/readyz`;
  }

  /**
   * Resolves once GET /readyz answers 200. Rejects after `timeoutMs`, or as soon as `isDead` gives a reason (at
   * start-up: three crashes in a row).
   */
  async waitReady(
    timeoutMs = READY_TIMEOUT_MS,
    isDead = () =>
      this.crashes >= 3 ? `crashed ${this.crashes} times in a row; last output:\n${this.tail.join("\n")}` : undefined,
  ) {
    const url = this.readyUrl;
    await until(
      `${this.spec.name} (${url})`,
      async () => (await fetch(url, { signal: AbortSignal.timeout(1_000) })).status === 200,
      timeoutMs,
      isDead,
    );
  }

  /**
   * After a restart: "<name> ready again after <n> ms" (counted from the restart) once /readyz answers 200, or that
   * it did not within READY_TIMEOUT_MS. Silent when this process exits first (its exit is reported, and the next
   * restart waits again) or the stack is stopping.
   */
  reportReadyAgain() {
    const { child, startedAt } = this;
    const gone = () => stopping || !child || child.exitCode !== null || child.signalCode !== null;
    this.waitReady(READY_TIMEOUT_MS, () => (gone() ? "exited" : undefined)).then(
      () => say(readyAgainMessage(this.spec.name, Date.now() - startedAt)),
      () => {
        if (!gone()) say(notReadyAgainMessage(this.spec.name, READY_TIMEOUT_MS, this.readyUrl));
      },
    );
  }

  async stop() {
    clearTimeout(this.restartTimer);
    await stopProcess(this.child, this.spec.name);
  }
}

async function stopProcess(child, name) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => {
    say(`${name} did not stop within ${STOP_TIMEOUT_MS / 1000} s: SIGKILL`);
    child.kill("SIGKILL");
  }, STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/** The node arguments of a service's package.json start script ("node <args>"), as deployed. */
function startArgsOf(serviceDir) {
  return JSON.parse(readFileSync(join(serviceDir, "package.json"), "utf8"))
    .scripts.start.split(/\s+/)
    .slice(1);
}

function checkBuilt() {
  const missing = [
    // What each start script runs (its last argument): dist/bundle/index.js.
    ...SERVICES.map((service) =>
      join("services", service.name, startArgsOf(join(root, "services", service.name)).at(-1)),
    ),
    join("services", "client", "dist", "bundle", "cli.js"),
  ].filter((path) => !existsSync(join(root, path)));
  if (missing.length > 0) {
    throw new StackError(`not built: ${missing.join(", ")}\nRun \`pnpm build\` first (then \`pnpm start\`).`);
  }
}

function serviceEnvironment(name, natsUrl, redisUrl) {
  const serviceEnv = { ...env };
  // Inherited port variables would move every service onto the same port; each uses its documented default.
  for (const key of ["PORT", "OPS_PORT", "GRPC_PORT"]) delete serviceEnv[key];
  return {
    ...serviceEnv,
    NATS_URL: natsUrl,
    REDIS_URL: redisUrl,
    ENRICHER_URL: env.ENRICHER_URL ?? "http://127.0.0.1:8081",
    // Where the workers' handlers submit child tasks (ctx.submitTask): this stack's gateway.
    WORKER_GATEWAY_URL: env.WORKER_GATEWAY_URL ?? GATEWAY_ADDR,
    LOG_LEVEL: env.LOG_LEVEL ?? "info",
    OTEL_SERVICE_NAME: name,
  };
}

function runDemo() {
  return new Promise((resolve) => {
    holdLogs = true;
    const child = spawn(process.execPath, [join(root, "services", "client", "dist", "bundle", "cli.js"), "demo"], {
      stdio: "inherit",
      env: { ...env, TASKCTL_ADDR: GATEWAY_ADDR },
    });
    child.on("exit", (code, signal) => {
      holdLogs = false;
      for (const line of heldLines) process.stdout.write(line);
      if (droppedLines > 0) say(`(${droppedLines} info/debug service log lines were hidden while the demo drew)`);
      heldLines = [];
      droppedLines = 0;
      resolve(code ?? (signal ? 130 : 1));
    });
  });
}

function printPanel() {
  const lines = [
    "",
    "  stack is up",
    "",
    `  gateway (gRPC)     ${GATEWAY_ADDR}`,
    "  web console        http://127.0.0.1:8090",
    "  enricher           http://127.0.0.1:8081",
    "  result-store       http://127.0.0.1:8082/results/<id>",
    "  ops (/readyz, /metrics)  gateway 8080, ingest 8083, scheduler 8084, worker 8085,",
    "                           notifier 8086, audit 8087, deadletter 8088",
    "",
    "  try:  node services/client/dist/bundle/cli.js submit sleep --payload '{\"ms\":2000}' --watch",
    "        node services/client/dist/bundle/cli.js demo --count 30",
    "        node services/client/dist/bundle/cli.js --help",
    "",
    "  Ctrl-C to stop",
    "",
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

async function shutdown() {
  stopping = true;
  for (const service of [...supervised.values()].reverse()) await service.stop();
  for (const { child, name } of [...infra].reverse()) await stopProcess(child, name);
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
}

let interrupted = false;
function onSignal(signal) {
  if (interrupted) {
    // A second Ctrl-C: do not wait for graceful shutdowns.
    for (const service of supervised.values()) service.child?.kill("SIGKILL");
    for (const { child } of infra) child.kill("SIGKILL");
    process.exit(130);
  }
  interrupted = true;
  say(`${signal}: stopping (Ctrl-C again to force)`);
  shutdown().then(
    () => process.exit(0),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}

// If this script dies anyway, do not leave detached children behind.
process.on("exit", () => {
  for (const service of supervised.values()) service.child?.kill("SIGKILL");
  for (const { child } of infra) if (child.exitCode === null) child.kill("SIGKILL");
});

async function main() {
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  checkBuilt();
  const conflicts = await portConflicts();
  if (conflicts.length > 0) throw new StackError(conflicts.join("\n"));

  const natsUrl = await startNats();
  const redisUrl = await startRedis();
  SERVICES.forEach((spec, index) => {
    supervised.set(spec.name, new Supervised(spec, index, serviceEnvironment(spec.name, natsUrl, redisUrl)));
  });
  const [first, ...rest] = [...supervised.values()];
  const gateway = rest.pop();
  // The enricher first, the middle of the pipeline together, the gateway once everything behind it is ready.
  for (const wave of [[first], rest, [gateway]]) {
    for (const service of wave) service.start();
    await Promise.all(wave.map((service) => service.waitReady()));
    if (interrupted) return;
  }
  say("all services are ready");

  if (env.STACK_NO_DEMO !== "1") {
    const demoExit = await runDemo();
    if (interrupted) return;
    if (env.STACK_EXIT_AFTER_DEMO === "1") {
      say(`demo exited with ${demoExit}; stopping (STACK_EXIT_AFTER_DEMO=1)`);
      await shutdown();
      process.exit(demoExit);
    }
  }
  printPanel();
}

main().catch(async (error) => {
  if (error instanceof StackError) say(`cannot start: ${error.message}`);
  else console.error(error);
  await shutdown().catch(() => undefined);
  process.exit(1);
});
