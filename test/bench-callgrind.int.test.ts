/**
 * `--instructions` against a real valgrind: a node process started under the wrapper runs uncounted until
 * startCounting, and stopCounting returns what it executed meanwhile, split by kind. valgrind is a Debian package that
 * `scripts/setup.sh test` installs; where it is missing the test is skipped (and the benchmark flag refuses with a
 * message).
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManagedProcess } from "@tm/testkit";
import { afterEach, expect, test } from "vitest";
import { callgrindWrapper, startCounting, stopCounting, valgrindAvailable } from "../bench/src/callgrind.js";
import { underWrapper } from "../pkg/testkit/src/services.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

// Busy JavaScript every 10 ms, a numbered line after each round, so the test can wait for rounds to happen.
const SCRIPT = `console.log("ready"); let n = 0; setInterval(() => { let s = 0; for (let i = 0; i < 2e4; i++) s += i % 7; console.log("round " + ++n + " " + s); }, 10);`;

const valgrind = await valgrindAvailable();

test.skipIf(!valgrind)(
  "counts only what runs between startCounting and stopCounting, by kind",
  { timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "tm-callgrind-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const before = process.env.TM_SERVICE_WRAPPER;
    process.env.TM_SERVICE_WRAPPER = callgrindWrapper(dir);
    const child = new ManagedProcess({ name: "counted", ...underWrapper([process.execPath, "-e", SCRIPT]) });
    if (before === undefined) delete process.env.TM_SERVICE_WRAPPER;
    else process.env.TM_SERVICE_WRAPPER = before;
    child.start();
    cleanups.push(() => child.stop(5_000).then(() => undefined));
    await child.waitForLine(/^ready$/, 60_000);
    const pid = child.pid ?? 0;

    await startCounting(pid);
    const roundsBefore = child.output.filter((line) => line.startsWith("round")).length;
    await child.waitForLine(new RegExp(`^round ${roundsBefore + 5} `), 60_000);
    const counted = await stopCounting(pid, dir);

    expect(counted.total).toBe(counted.javascript + counted.gc + counted.compiling + counted.other);
    // Five rounds of a 20,000-step loop: at least 100,000 instructions of JavaScript.
    expect(counted.javascript).toBeGreaterThan(100_000);
    // A second window counts anew (the first dump's count is not carried over).
    await startCounting(pid);
    const second = await stopCounting(pid, dir);
    expect(second.total).toBeLessThan(counted.total);
  },
);
