import { mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A TCP port free on every IPv4 address right now (portIsFree), for a server a test is about to start.
 *
 * Chosen below the kernel's ephemeral range (`net.ipv4.ip_local_port_range`, 32768–60999 by default): the kernel takes
 * the local port of every outgoing connection from that range, so a port chosen there (as `listen(0)` would) can be
 * taken by any connection, another test's client to NATS or Redis, between this check and the server's bind. Below it
 * only an explicit bind can take it, mostly one of the test kit's own servers, so each port handed out is reserved
 * machine-wide first: a file named after it in `PORT_RESERVATIONS`, created exclusively, so that parallel vitest
 * workers (and anything else using the test kit) never hand out the same port while it is reserved. A reservation
 * lasts while its process lives (released at a normal exit; vitest ends its workers with SIGTERM, which skips exit
 * handlers, so the next process to find one of a dead pid drops it), and at most RESERVED_FOR_MS (a server restarted
 * on its port keeps it meanwhile). This replaced one slice of the range per vitest worker by VITEST_POOL_ID: vitest 4
 * gives both integration workers the same id once the unit project has run first, so both drew from one slice.
 * Where there is no room below the ephemeral range, the kernel picks.
 */
export async function freePort(): Promise<number> {
  const range = candidateRange();
  if (range) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const port = range.from + Math.floor(Math.random() * (range.to - range.from));
      // Reserved before the check, so a concurrent call (here or in another process) cannot pick it meanwhile; one
      // that turns out taken stays reserved, and skipped.
      if (!reservePort(port)) continue;
      if (await portIsFree(port)) return port;
    }
  }
  return kernelPort();
}

const LOWEST = 20_000;
/** How long a reservation holds at most, even if its process is still alive. */
const RESERVED_FOR_MS = 10 * 60_000;
/** Where reservations are kept: one file per port, holding the reserving process's pid. */
export const PORT_RESERVATIONS = join(tmpdir(), "tm-testkit-ports");
const reservedHere = new Set<number>();
let releasesAtExit = false;

/**
 * Reserves `port` for this process, machine-wide, unless a live reservation holds it (this process's own included).
 * A stale one (its process gone, or older than RESERVED_FOR_MS) is dropped, and the port left for a later pick.
 */
export function reservePort(port: number): boolean {
  if (reservedHere.has(port)) return false;
  const path = join(PORT_RESERVATIONS, String(port));
  try {
    if (!releasesAtExit) {
      mkdirSync(PORT_RESERVATIONS, { recursive: true });
      process.once("exit", releaseAll);
      releasesAtExit = true;
    }
    writeFileSync(path, String(process.pid), { flag: "wx" });
    reservedHere.add(port);
    return true;
  } catch (error) {
    // Held by another process: give up this port now; if that reservation is stale, drop it for a later pick. (Two
    // processes dropping the same stale file at once could drop a fresh one; a port lost so is caught by the bind.)
    if ((error as NodeJS.ErrnoException).code === "EEXIST" && isStale(path)) {
      try {
        unlinkSync(path);
      } catch {
        // gone already
      }
    }
    return false;
  }
}

/** A reservation older than RESERVED_FOR_MS, or whose process is gone. */
function isStale(path: string): boolean {
  try {
    if (Date.now() - statSync(path).mtimeMs > RESERVED_FOR_MS) return true;
    const pid = Number(readFileSync(path, "utf8"));
    if (!Number.isInteger(pid) || pid <= 0) return true;
    process.kill(pid, 0); // throws if there is no such process
    return false;
  } catch (error) {
    // EPERM: the process exists but is not ours to signal, so it is alive.
    return (error as NodeJS.ErrnoException).code !== "EPERM";
  }
}

function releaseAll(): void {
  for (const port of reservedHere) {
    try {
      unlinkSync(join(PORT_RESERVATIONS, String(port)));
    } catch {
      // already dropped as stale
    }
  }
  reservedHere.clear();
}

let range: { from: number; to: number } | null | undefined;

/** The ports below the ephemeral range, worked out once (null: no room there). */
function candidateRange(): { from: number; to: number } | null {
  if (range === undefined) {
    const ephemeralStart = ephemeralRangeStart();
    range = ephemeralStart - LOWEST >= 1_000 ? { from: LOWEST, to: ephemeralStart } : null;
  }
  return range;
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
