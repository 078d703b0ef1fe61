import { existsSync, mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { freePort, PORT_RESERVATIONS, portIsFree, reservePort } from "@tm/testkit";
import { describe, expect, test } from "vitest";

describe("freePort", () => {
  test("hands out distinct ports outside the ephemeral range that a server can listen on", async () => {
    const [ephemeralStart] = (await import("node:fs"))
      .readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
      .trim()
      .split(/\s+/)
      .map(Number);
    const ports = await Promise.all(Array.from({ length: 400 }, () => freePort()));
    expect(new Set(ports).size).toBe(ports.length);
    for (const port of ports) expect(port).toBeLessThan(ephemeralStart ?? 0);
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(ports[0], "0.0.0.0", resolve));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test("every port handed out is reserved machine-wide in this process's name, so no other process picks it", async () => {
    const port = await freePort();
    expect(readFileSync(join(PORT_RESERVATIONS, String(port)), "utf8")).toBe(String(process.pid));
  });
});

describe("reservePort", () => {
  // Ports outside freePort's range (below 20000), one per test process, so nothing else reserves them meanwhile.
  const base = 10_000 + (process.pid % 2_000) * 4;
  const fileOf = (port: number) => join(PORT_RESERVATIONS, String(port));
  const plant = (port: number, pid: number) => {
    mkdirSync(PORT_RESERVATIONS, { recursive: true });
    writeFileSync(fileOf(port), String(pid));
  };

  test("a port is reserved once, in this process's name", () => {
    rmSync(fileOf(base), { force: true });
    expect(reservePort(base)).toBe(true);
    expect(readFileSync(fileOf(base), "utf8")).toBe(String(process.pid));
    expect(reservePort(base)).toBe(false);
  });

  test("another live process's reservation holds; a gone process's is dropped, and the port free again after", () => {
    plant(base + 1, 1); // pid 1 (init) is alive
    expect(reservePort(base + 1)).toBe(false);
    expect(existsSync(fileOf(base + 1))).toBe(true);
    rmSync(fileOf(base + 1));

    plant(base + 2, 4_194_303); // above any pid this machine hands out
    expect(reservePort(base + 2)).toBe(false);
    expect(existsSync(fileOf(base + 2))).toBe(false);
    expect(reservePort(base + 2)).toBe(true);
  });

  test("a reservation older than ten minutes is dropped even if its process lives", () => {
    plant(base + 3, 1);
    const elevenMinutesAgo = new Date(Date.now() - 11 * 60_000);
    utimesSync(fileOf(base + 3), elevenMinutesAgo, elevenMinutesAgo);
    expect(reservePort(base + 3)).toBe(false);
    expect(existsSync(fileOf(base + 3))).toBe(false);
  });
});

describe("portIsFree", () => {
  /** What portIsFree says of a port while a server listens on it at `host`; the port, for checking it after. */
  const whileHeldOn = async (host: string) => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    const port = (server.address() as { port: number }).port;
    try {
      return { port, free: await portIsFree(port) };
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  };

  test("a port held on another address only is not free: services bind 0.0.0.0", async () => {
    // 127.0.0.2 is loopback too on Linux: held there, the port is still free on 127.0.0.1 but not on 0.0.0.0.
    const { port, free } = await whileHeldOn("127.0.0.2");
    expect(free).toBe(false);
    expect(await portIsFree(port)).toBe(true);
  });

  test("a port held on 127.0.0.1 is not free", async () => {
    expect((await whileHeldOn("127.0.0.1")).free).toBe(false);
  });
});
