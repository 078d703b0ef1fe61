import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/**
 * A TCP port free on every IPv4 address right now (portIsFree), for a server a test is about to start.
 *
 * Chosen below the kernel's ephemeral range (`net.ipv4.ip_local_port_range`, 32768–60999 by default): the kernel takes
 * the local port of every outgoing connection from that range, so a port chosen there (as `listen(0)` would) can be
 * taken by any connection, another test's client to NATS or Redis, between this check and the server's bind. Below it
 * only an explicit bind can take it. Each vitest worker (VITEST_POOL_ID; elsewhere the pid) draws from its own slice
 * of 20000 up to the range's start, and this process does not hand out the same port twice within ten minutes, so
 * parallel workers and parallel starts do not pick the same one. Where no such room exists, the kernel picks.
 */
export async function freePort(): Promise<number> {
  const slice = thisProcessSlice();
  if (slice) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const port = slice.from + Math.floor(Math.random() * (slice.to - slice.from));
      if (recentlyHandedOut(port)) continue;
      // Reserved before the check, so a concurrent call cannot pick it meanwhile (one that is taken stays skipped).
      handedOut.set(port, Date.now());
      if (await portIsFree(port)) return port;
    }
  }
  return kernelPort();
}

const LOWEST = 20_000;
const SLICES = 8;
const REUSE_AFTER_MS = 10 * 60_000;
const handedOut = new Map<number, number>();

function recentlyHandedOut(port: number): boolean {
  const at = handedOut.get(port);
  return at !== undefined && Date.now() - at < REUSE_AFTER_MS;
}

let ownSlice: { from: number; to: number } | null | undefined;

/** This process's slice, worked out once. */
function thisProcessSlice(): { from: number; to: number } | null {
  if (ownSlice === undefined)
    ownSlice = portSlice(ephemeralRangeStart(), Number(process.env.VITEST_POOL_ID ?? process.pid));
  return ownSlice;
}

/** The share of the ports between LOWEST and `ephemeralStart` that belongs to `owner` (null: no room for slices). */
export function portSlice(ephemeralStart: number, owner: number): { from: number; to: number } | null {
  const width = Math.floor((ephemeralStart - LOWEST) / SLICES);
  if (width < 100) return null;
  const index = ((owner % SLICES) + SLICES) % SLICES;
  return { from: LOWEST + index * width, to: LOWEST + (index + 1) * width };
}

function ephemeralRangeStart(): number {
  try {
    const start = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(start) && start > 0 ? start : 0;
  } catch {
    return 0; // not Linux: let the kernel pick
  }
}

/**
 * Whether a server could listen on `port` on every IPv4 address. Checked on 0.0.0.0, which services bind: a port held
 * on one address only (another loopback address, the machine's own) leaves 127.0.0.1 free but fails a bind on
 * 0.0.0.0, so a check on 127.0.0.1 would hand out a port the gateway cannot take.
 */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen(port, "0.0.0.0", () => server.close(() => resolve(true)));
  });
}

function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === "object") resolve(address.port);
        else reject(new Error("could not allocate a port"));
      });
    });
  });
}

/** Resolves once `check` resolves true, polling every `intervalMs`; rejects with `what` after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  { timeoutMs = 15_000, intervalMs = 25 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const detail = lastError ? ` (last error: ${(lastError as Error).message ?? lastError})` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
