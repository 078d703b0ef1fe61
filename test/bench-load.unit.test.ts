import { expect, test } from "vitest";
import { closedLoop, openLoop, within } from "../bench/src/load.js";

const busyWait = (ms: number) => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // a stall of the sending process (GC pause, blocked event loop)
  }
};

test("open loop charges a stall to every task that should have been sent during it (no coordinated omission)", async () => {
  let first = true;
  const task = async () => {
    if (first) {
      first = false;
      busyWait(200);
    }
  };
  // 100/s for 20 tasks: intended at 0, 10, ..., 190 ms; the stall delays them all to ~200 ms.
  const result = await openLoop(task, { ratePerSec: 100, total: 20 });
  expect(result.completed).toBe(20);
  const sorted = [...result.latenciesMs].sort((a, b) => a - b);
  // Measured from the actual send, these would all be ~0 ms; from the intended time the median is ~100 ms.
  expect(sorted[10]).toBeGreaterThan(50);
  expect(sorted[19]).toBeGreaterThan(150);
});

test("closed loop keeps at most `inFlight` tasks running and runs exactly `total`", async () => {
  let running = 0;
  let peak = 0;
  const result = await closedLoop(
    async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((resolve) => setTimeout(resolve, 1));
      running--;
    },
    { total: 50, inFlight: 4 },
  );
  expect(result.completed).toBe(50);
  expect(peak).toBe(4);
  expect(result.tasksPerSec).toBeGreaterThan(0);
});

test("failed tasks are counted with the first error, not measured", async () => {
  let n = 0;
  const result = await closedLoop(
    async () => {
      if (n++ % 2 === 0) throw new Error(`boom ${n}`);
    },
    { total: 10, inFlight: 1 },
  );
  expect(result.completed).toBe(5);
  expect(result.failed).toBe(5);
  expect(result.firstError).toBe("boom 1");
  await expect(within(new Promise(() => undefined), 20, "lost task")).rejects.toThrow(/lost task: no completion/);
});
