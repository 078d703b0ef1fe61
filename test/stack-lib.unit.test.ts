import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, test } from "vitest";
import {
  afterCrash,
  backoffDelayMs,
  choosePort,
  formatLogLine,
  formatTime,
  isPortFree,
  levelName,
  NAME_COLOURS,
  notReadyAgainMessage,
  portConflicts,
  REQUIRED_PORTS,
  readyAgainMessage,
  SERVICES,
  servicePrefix,
} from "../scripts/lib/stack-lib.mjs";

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/** Occupies a port the OS picks on 127.0.0.1 and returns it. */
async function occupyPort(): Promise<number> {
  const server = createServer();
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as { port: number }).port;
}

describe("ports", () => {
  test("a port someone listens on (even on loopback only) is not free", async () => {
    const port = await occupyPort();
    expect(await isPortFree(port)).toBe(false);
  });

  test("choosePort keeps the preferred port when free and picks another when taken", async () => {
    const taken = await occupyPort();
    const chosen = await choosePort(taken);
    expect(chosen).not.toBe(taken);
    expect(await isPortFree(chosen)).toBe(true);
  });

  test("every fixed port of the contract is checked, and a conflict names the port and what to do", async () => {
    expect(REQUIRED_PORTS.map(({ port }) => port)).toEqual([
      8080, 8081, 8082, 8083, 8084, 8085, 8086, 8087, 8088, 8090, 50051,
    ]);
    const conflicts = await portConflicts(async (port) => port !== 8082);
    expect(conflicts).toEqual([
      "port 8082 (result-store HTTP API) is already in use. Is another stack (pnpm start, docker compose) running? " +
        "Stop it, or find the process with: ss -ltnp 'sport = :8082'",
    ]);
  });

  test("services start enricher first and gateway last", () => {
    expect(SERVICES[0]?.name).toBe("enricher");
    expect(SERVICES.at(-1)?.name).toBe("gateway");
    expect(SERVICES).toHaveLength(9);
  });
});

describe("restart backoff", () => {
  test("doubles from 1 s and caps at 30 s", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 50].map(backoffDelayMs)).toEqual([
      1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000,
    ]);
  });

  test("crashes in a row grow the delay; 60 s of uptime resets it", () => {
    let crashes = 0;
    const delays = [];
    for (let i = 0; i < 4; i++) {
      const next = afterCrash(crashes, 500);
      crashes = next.crashes;
      delays.push(next.delayMs);
    }
    expect(delays).toEqual([1_000, 2_000, 4_000, 8_000]);
    expect(afterCrash(crashes, 59_999)).toEqual({ crashes: 5, delayMs: 16_000 });
    expect(afterCrash(crashes, 60_000)).toEqual({ crashes: 1, delayMs: 1_000 });
  });
});

describe("ready again after a restart", () => {
  test("names the service and the milliseconds since its restart", () => {
    expect(readyAgainMessage("worker", 1234.4)).toBe("worker ready again after 1234 ms");
  });

  test("a service still not ready at the deadline is reported with its /readyz URL", () => {
    expect(notReadyAgainMessage("worker", 60_000, "http://127.0.0.1:8085/readyz")).toBe(
      "worker not ready again 60 s after its restart (http://127.0.0.1:8085/readyz did not answer 200)",
    );
  });
});

describe("log lines", () => {
  const pinoLine = JSON.stringify({
    level: "warn",
    time: "2026-01-02T03:04:05.678Z",
    service: "worker",
    msg: "attempt failed",
    taskId: "abc",
    err: { message: "boom", stack: "..." },
    trace_id: "0af7651916cd43dd8448eb211c80319c",
  });

  test("pino JSON is rendered compactly: time, level, msg, taskId, error", () => {
    expect(formatLogLine(pinoLine)).toBe("03:04:05.678 WARN  attempt failed taskId=abc error=boom");
  });

  test("numeric levels and epoch times (pino defaults) are understood", () => {
    expect(levelName(50)).toBe("error");
    expect(formatTime(Date.UTC(2026, 0, 1, 12, 0, 0, 5))).toBe("12:00:00.005");
    expect(formatLogLine(JSON.stringify({ level: 30, time: 0, msg: "up" }))).toBe("00:00:00.000 INFO  up");
  });

  test("raw mode and non-JSON lines are left as they are", () => {
    expect(formatLogLine(pinoLine, { raw: true })).toBe(pinoLine);
    expect(formatLogLine("Error: something odd")).toBe("Error: something odd");
    expect(formatLogLine("{not json")).toBe("{not json");
  });

  test("colour tints warnings without changing the text", () => {
    const coloured = formatLogLine(pinoLine, { colour: true });
    expect(coloured.startsWith("\x1b[33m")).toBe(true);
    expect(coloured).toContain("03:04:05.678 WARN  attempt failed");
  });

  test("service prefixes are padded to one width", () => {
    expect(servicePrefix("gateway")).toBe("[gateway     ] ");
    expect(servicePrefix("result-store")).toBe("[result-store] ");
    expect(servicePrefix("audit", { colour: true, index: 0 })).toBe("\x1b[36m[audit       ]\x1b[0m ");
    // Every service and the stack itself get a colour of their own.
    expect(new Set(NAME_COLOURS).size).toBe(SERVICES.length + 1);
  });
});
