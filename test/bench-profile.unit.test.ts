import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  type AllocSummary,
  type HeapProfile,
  type HeapProfileNode,
  heapServiceOf,
  renderAllocProfiles,
  summariseHeapProfile,
  summariseHeapProfiles,
} from "../bench/src/alloc-profile.js";
import { parseArgs } from "../bench/src/args.js";
import {
  type CpuProfile,
  packageOf,
  renderProfiles,
  summariseProfile,
  summariseProfiles,
} from "../bench/src/profile.js";

const SERVICE = "file:///repo/services/audit/dist/service.js";
const IOREDIS = "file:///repo/node_modules/.pnpm/ioredis@5.9.2/node_modules/ioredis/built/Pipeline.js";
const LOADER = "node:internal/modules/esm/loader";

/**
 * root ─ (idle) 2
 *      ├ (garbage collector) 3
 *      ├ handler (services/audit) 1 ─ exec (ioredis) 1 ─ handleWriteReq (node) 0 ─ writeUtf8String (native) 2
 *      └ import (module loader) 1 ─ compile (native, no url) 1
 */
const PROFILE: CpuProfile = {
  nodes: [
    { id: 1, callFrame: { functionName: "(root)", url: "", lineNumber: -1 }, children: [2, 3, 4, 7] },
    { id: 2, callFrame: { functionName: "(idle)", url: "", lineNumber: -1 } },
    { id: 3, callFrame: { functionName: "(garbage collector)", url: "", lineNumber: -1 } },
    { id: 4, callFrame: { functionName: "handler", url: SERVICE, lineNumber: 9 }, children: [5] },
    { id: 5, callFrame: { functionName: "exec", url: IOREDIS, lineNumber: 224 }, children: [9] },
    {
      id: 9,
      callFrame: { functionName: "handleWriteReq", url: "node:internal/stream_base_commons", lineNumber: 44 },
      children: [6],
    },
    { id: 6, callFrame: { functionName: "writeUtf8String", url: "", lineNumber: -1 } },
    { id: 7, callFrame: { functionName: "import", url: LOADER, lineNumber: 0 }, children: [8] },
    { id: 8, callFrame: { functionName: "compileSourceTextModule", url: "", lineNumber: -1 } },
  ],
  // 10 samples of 1 ms each: 2 idle, 3 GC, 1 handler, 1 exec, 2 socket write, 1 module compile.
  samples: [2, 2, 3, 3, 3, 4, 5, 6, 6, 8],
  timeDeltas: Array(10).fill(1_000),
};

describe("bench --profile: the summary of a CPU profile", () => {
  it("charges busy time to shares, functions and packages", () => {
    const summary = summariseProfile(PROFILE);
    expect(summary.busySeconds).toBeCloseTo(0.008);
    // Start-up (the module loader and the native compile under it) is set apart; shares are of the other 7 ms.
    expect(summary.startupSeconds).toBeCloseTo(0.001);
    expect(summary.gc).toBeCloseTo(3 / 7);
    expect(summary.socketWrites).toBeCloseTo(2 / 7);
    expect(summary.topFunctions[0]).toEqual({ name: "(garbage collector)", share: 3 / 7 });
    expect(summary.topFunctions.map((f) => f.name)).toContain("handler dist/service.js:10");
    expect(summary.topFunctions.map((f) => f.name)).not.toContain("compileSourceTextModule");
    // The native write, under node's stream internals, is charged to the package that made it.
    const packages = Object.fromEntries(summary.topPackages.map((p) => [p.name, p.share]));
    expect(packages).toEqual({ "(garbage collector)": 3 / 7, ioredis: 3 / 7, "services/audit": 1 / 7 });
  });

  it("names packages by the innermost node_modules entry, our workspace, or node's area", () => {
    expect(packageOf(IOREDIS)).toBe("ioredis");
    expect(packageOf("file:///r/node_modules/.pnpm/@opentelemetry+api@1/node_modules/@opentelemetry/api/x.js")).toBe(
      "@opentelemetry/api",
    );
    expect(packageOf("file:///r/pkg/flow/dist/consume.js")).toBe("@tm/flow");
    expect(packageOf(SERVICE)).toBe("services/audit");
    expect(packageOf("node:internal/streams/writable")).toBe("node:streams");
    expect(packageOf("node:net")).toBe("node:net");
  });
});

describe("bench --profile: the profiles of a run", () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("summarises each service's main-thread profile and names it by its code", () => {
    dir = mkdtempSync(join(tmpdir(), "tm-profile-"));
    writeFileSync(join(dir, "CPU.20261204.053609.6875.0.001.cpuprofile"), JSON.stringify(PROFILE));
    // The ESM loader hooks' worker thread (thread 1) and a profile of no service are left out.
    writeFileSync(join(dir, "CPU.20261204.053610.6875.1.002.cpuprofile"), JSON.stringify(PROFILE));
    const bare = { ...PROFILE, nodes: PROFILE.nodes.filter((n) => n.id !== 4).map((n) => ({ ...n })) };
    (bare.nodes[0] as { children: number[] }).children = [2, 3, 7];
    writeFileSync(join(dir, "CPU.20261204.053611.7000.0.001.cpuprofile"), JSON.stringify(bare));
    const summaries = summariseProfiles(dir);
    expect(summaries.map((s) => [s.service, s.pid])).toEqual([["audit", 6875]]);
    const text = renderProfiles(summaries, dir);
    expect(text).toContain("audit (pid 6875): busy 0.01 s (start-up 0.00 s); GC 42.9 %, socket writes 28.6 %");
    expect(renderProfiles([], dir)).toContain("No service profiles");
  });

  it("is a flag of its own, refused when the output path would be split", () => {
    expect(parseArgs([], "out").profile).toBe(false);
    expect(parseArgs(["--profile", "--drain", "audit"], "out").profile).toBe(true);
    expect(() => parseArgs(["--profile", "--out", "my results"], "out")).toThrow("must not contain spaces");
  });
});

const frame = (functionName: string, url: string, lineNumber = 0) => ({ functionName, url, lineNumber });
const heapNode = (
  callFrame: HeapProfileNode["callFrame"],
  selfSize: number,
  children: HeapProfileNode[] = [],
): HeapProfileNode => ({ callFrame, selfSize, children });

/**
 * root ─ handler (services/audit) 100 ─ exec (ioredis) 300 ─ Map (native) 200
 *      │                               └ JSON.stringify (native) 400
 *      ├ import (module loader) 1000 ─ handler (services/audit, top-level code) 50
 *      ├ patchedRequire (require-in-the-middle) 500
 *      └ post (node:inspector, the profiler's own session) 700
 */
const HEAP: HeapProfile = {
  head: heapNode(frame("(root)", ""), 0, [
    heapNode(frame("handler", SERVICE, 9), 100, [
      heapNode(frame("exec", IOREDIS, 224), 300, [heapNode(frame("Map", ""), 200)]),
      heapNode(frame("stringify", ""), 400),
    ]),
    heapNode(frame("import", LOADER), 1000, [heapNode(frame("handler", SERVICE, 1), 50)]),
    heapNode(frame("patchedRequire", "file:///r/node_modules/require-in-the-middle/index.js"), 500),
    heapNode(frame("post", "node:inspector"), 700),
  ]),
};

describe("bench --alloc-profile: the summary of a heap profile", () => {
  it("charges allocations to functions and packages, start-up and the profiler set apart", () => {
    const summary = summariseHeapProfile(HEAP);
    expect(summary.allocatedMb).toBeCloseTo(1000 / 1e6);
    // The module loader, what runs under it, and the require hook's own frames are start-up; the profiler is left out.
    expect(summary.startupMb).toBeCloseTo(1550 / 1e6);
    const packages = Object.fromEntries(summary.topPackages.map((p) => [p.name, p.share]));
    // Native allocations (a Map, a JSON string) count for the code that made them.
    expect(packages).toEqual({ ioredis: 0.5, "services/audit": 0.5 });
    expect(summary.topFunctions[0]).toEqual({ name: "stringify", share: 0.4 });
    expect(summary.topFunctions.map((f) => f.name)).toContain("handler dist/service.js:10");
    expect(heapServiceOf(HEAP)).toBe("audit");
  });

  it("summarises the profiles in a directory, one per service process", () => {
    const dir = mkdtempSync(join(tmpdir(), "tm-alloc-"));
    try {
      writeFileSync(join(dir, "Heap.4242.heapprofile"), JSON.stringify(HEAP));
      // Not a service: no services/<name>/dist frame.
      writeFileSync(join(dir, "Heap.4243.heapprofile"), JSON.stringify({ head: heapNode(frame("(root)", ""), 0) }));
      writeFileSync(join(dir, "summary.json"), "[]");
      const summaries = summariseHeapProfiles(dir);
      expect(summaries.map((s) => [s.service, s.pid])).toEqual([["audit", 4242]]);
      const text = renderAllocProfiles([{ ...(summaries[0] as AllocSummary), kbPerItem: 0.5 }], dir, "message");
      expect(text).toContain("audit (pid 4242): allocated 0.0 MB (~0.5 KB per message); start-up 0.0 MB");
      expect(text).toContain("ioredis 50.0 %");
      expect(renderAllocProfiles([], dir)).toContain("No service heap profiles");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("is a flag of its own", () => {
    expect(parseArgs([], "out").allocProfile).toBe(false);
    expect(parseArgs(["--alloc-profile", "--drain", "scheduler"], "out").allocProfile).toBe(true);
  });
});
