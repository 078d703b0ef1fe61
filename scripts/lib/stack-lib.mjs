/**
 * Pure helpers of scripts/stack.mjs (what `pnpm start` runs): the service table, port checks, the restart backoff
 * schedule and its "ready again" lines, and the compact rendering of pino log lines. Kept apart from the process juggling so they can be
 * unit-tested (test/stack-lib.unit.test.ts).
 */
import { createServer } from "node:net";

/**
 * The services in start order: the enricher first (ingest calls it), the gateway last (it accepts work only when
 * the pipeline behind it is up). `readyPort` serves GET /readyz.
 * @type {ReadonlyArray<{ name: string, readyPort: number, role: string }>}
 */
export const SERVICES = [
  { name: "enricher", readyPort: 8081, role: "enricher HTTP API" },
  { name: "ingest", readyPort: 8083, role: "ingest ops" },
  { name: "scheduler", readyPort: 8084, role: "scheduler ops" },
  { name: "worker", readyPort: 8085, role: "worker ops" },
  { name: "result-store", readyPort: 8082, role: "result-store HTTP API" },
  { name: "notifier", readyPort: 8086, role: "notifier ops" },
  { name: "audit", readyPort: 8087, role: "audit ops" },
  { name: "deadletter", readyPort: 8088, role: "deadletter ops" },
  { name: "gateway", readyPort: 8080, role: "gateway ops" },
];

/** Every fixed port the stack needs, with what uses it (for the "port taken" message). */
export const REQUIRED_PORTS = [
  { port: 50051, role: "gateway gRPC" },
  { port: 8090, role: "gateway web console" },
  ...SERVICES.map(({ readyPort, role }) => ({ port: readyPort, role })),
].sort((a, b) => a.port - b.port);

/**
 * True when nothing listens on `port`. Binding the wildcard address fails whether the other listener is on
 * 0.0.0.0, :: or 127.0.0.1, which is what the services will try to bind.
 * @param {number} port
 * @returns {Promise<boolean>}
 */
export function isPortFree(port) {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen({ port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * `preferred` when it is free, otherwise a port the OS picks.
 * @param {number} preferred
 * @returns {Promise<number>}
 */
export async function choosePort(preferred) {
  if (await isPortFree(preferred)) return preferred;
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        address && typeof address === "object" ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

/**
 * The required ports that are taken, each with a message saying what to do.
 * @param {(port: number) => Promise<boolean>} [isFree]
 * @returns {Promise<string[]>}
 */
export async function portConflicts(isFree = isPortFree) {
  const conflicts = [];
  for (const { port, role } of REQUIRED_PORTS) {
    if (!(await isFree(port))) conflicts.push(portConflictMessage(port, role));
  }
  return conflicts;
}

/**
 * @param {number} port
 * @param {string} role
 */
export function portConflictMessage(port, role) {
  return (
    `port ${port} (${role}) is already in use. Is another stack (pnpm start, docker compose) running? ` +
    `Stop it, or find the process with: ss -ltnp 'sport = :${port}'`
  );
}

export const BACKOFF_INITIAL_MS = 1_000;
export const BACKOFF_MAX_MS = 30_000;
/** A service that stayed up this long is considered healthy again: its next crash restarts after 1 s. */
export const BACKOFF_RESET_AFTER_MS = 60_000;

/**
 * Delay before restart number `crashes` (1 for the first crash): 1 s, 2 s, 4 s, ... capped at 30 s.
 * @param {number} crashes
 */
export function backoffDelayMs(crashes) {
  const exponent = Math.max(0, crashes - 1);
  return Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** Math.min(exponent, 30));
}

/**
 * What to do after a crash, given the crashes so far in a row and how long the process was up.
 * @param {number} previousCrashes
 * @param {number} uptimeMs
 * @returns {{ crashes: number, delayMs: number }}
 */
export function afterCrash(previousCrashes, uptimeMs) {
  const crashes = uptimeMs >= BACKOFF_RESET_AFTER_MS ? 1 : previousCrashes + 1;
  return { crashes, delayMs: backoffDelayMs(crashes) };
}

/**
 * The stack's line once a restarted service answers /readyz with 200 again.
 * @param {string} name
 * @param {number} elapsedMs since the restart (the spawn of the new process)
 */
export function readyAgainMessage(name, elapsedMs) {
  return `${name} ready again after ${Math.round(elapsedMs)} ms`;
}

/**
 * The stack's line when a restarted service is still not ready at the deadline.
 * @param {string} name
 * @param {number} timeoutMs
 * @param {string} readyUrl
 */
export function notReadyAgainMessage(name, timeoutMs, readyUrl) {
  return `${name} not ready again ${timeoutMs / 1000} s after its restart (${readyUrl} did not answer 200)`;
}

const PINO_LEVELS = { 10: "trace", 20: "debug", 30: "info", 40: "warn", 50: "error", 60: "fatal" };
const LEVEL_RANK = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };
const ANSI = { reset: "\x1b[0m", dim: "\x1b[2m", red: "\x1b[31m", yellow: "\x1b[33m", magenta: "\x1b[35m" };
/** One colour per service (nine), then bold for the stack's own lines. */
export const NAME_COLOURS = [
  "\x1b[36m",
  "\x1b[32m",
  "\x1b[33m",
  "\x1b[34m",
  "\x1b[35m",
  "\x1b[96m",
  "\x1b[92m",
  "\x1b[94m",
  "\x1b[95m",
  "\x1b[1m",
];

/** @param {unknown} level pino writes a label ("info") with the kit's formatter, a number (30) by default. */
export function levelName(level) {
  if (typeof level === "number") return PINO_LEVELS[/** @type {keyof typeof PINO_LEVELS} */ (level)] ?? String(level);
  return typeof level === "string" ? level : "info";
}

/** @param {string} level */
export function levelRank(level) {
  return LEVEL_RANK[/** @type {keyof typeof LEVEL_RANK} */ (level)] ?? 30;
}

/**
 * Parses one line of a service's output: a pino JSON object, or undefined for anything else.
 * @param {string} line
 * @returns {Record<string, unknown> | undefined}
 */
export function parseLogLine(line) {
  if (!line.startsWith("{")) return undefined;
  try {
    const value = JSON.parse(line);
    return value && typeof value === "object" && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `[gateway     ] ` padded to the longest service name, coloured per service.
 * @param {string} name
 * @param {{ colour?: boolean, width?: number, index?: number }} [options]
 */
export function servicePrefix(name, { colour = false, width = 12, index = 0 } = {}) {
  const label = `[${name.padEnd(width)}]`;
  return colour ? `${NAME_COLOURS[index % NAME_COLOURS.length]}${label}${ANSI.reset} ` : `${label} `;
}

/**
 * A pino line rendered as "HH:MM:SS.mmm LEVEL msg taskId=… error=…"; other lines are kept as they are.
 * @param {string} line
 * @param {{ colour?: boolean, raw?: boolean }} [options]
 */
export function formatLogLine(line, { colour = false, raw = false } = {}) {
  const entry = raw ? undefined : parseLogLine(line);
  if (!entry) return line;
  const level = levelName(entry.level);
  const time = formatTime(entry.time);
  const parts = [time, level.toUpperCase().padEnd(5), String(entry.msg ?? "")];
  if (typeof entry.taskId === "string") parts.push(`taskId=${entry.taskId}`);
  const error = /** @type {{ message?: unknown } | undefined} */ (entry.err ?? entry.error);
  if (error && typeof error === "object" && typeof error.message === "string") parts.push(`error=${error.message}`);
  const text = parts.filter(Boolean).join(" ");
  if (!colour) return text;
  const rank = levelRank(level);
  const tint = rank >= 50 ? ANSI.red : rank >= 40 ? ANSI.yellow : rank <= 20 ? ANSI.dim : "";
  return tint ? `${tint}${text}${ANSI.reset}` : text;
}

/** @param {unknown} time ISO string (the kit's isoTime) or epoch ms (pino's default). */
export function formatTime(time) {
  const date = typeof time === "string" || typeof time === "number" ? new Date(time) : undefined;
  if (!date || Number.isNaN(date.getTime())) return "";
  return date.toISOString().slice(11, 23);
}
