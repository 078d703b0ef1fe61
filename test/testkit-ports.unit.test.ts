import { createServer } from "node:net";
import { freePort, portIsFree, portSlice } from "@tm/testkit";
import { describe, expect, test } from "vitest";

describe("portSlice", () => {
  test("eight disjoint slices between 20000 and the kernel's ephemeral range, one per owner", () => {
    const slices = Array.from({ length: 8 }, (_, owner) => portSlice(32768, owner));
    expect(slices[0]).toEqual({ from: 20000, to: 21596 });
    expect(slices[7]).toEqual({ from: 31172, to: 32768 });
    for (let i = 1; i < slices.length; i++) expect(slices[i]?.from).toBe(slices[i - 1]?.to);
    expect(portSlice(32768, 9)).toEqual(slices[1]); // owners wrap around
  });

  test("no slice where the ephemeral range leaves no room below it (the kernel picks then)", () => {
    expect(portSlice(20500, 1)).toBeNull();
    expect(portSlice(1024, 1)).toBeNull();
  });
});

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
    await new Promise<void>((resolve) => server.listen(ports[0], "127.0.0.1", resolve));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});

describe("portIsFree", () => {
  const listen = async (host: string) => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    return { server, port: (server.address() as { port: number }).port };
  };
  const close = (server: ReturnType<typeof createServer>) => new Promise<void>((r) => server.close(() => r()));

  test("a port held on another address only is not free: services bind 0.0.0.0", async () => {
    // 127.0.0.2 is loopback too on Linux: held there, the port is still free on 127.0.0.1 but not on 0.0.0.0.
    const { server, port } = await listen("127.0.0.2");
    try {
      expect(await portIsFree(port)).toBe(false);
    } finally {
      await close(server);
    }
    expect(await portIsFree(port)).toBe(true);
  });

  test("a port held on 127.0.0.1 is not free", async () => {
    const { server, port } = await listen("127.0.0.1");
    try {
      expect(await portIsFree(port)).toBe(false);
    } finally {
      await close(server);
    }
  });
});
