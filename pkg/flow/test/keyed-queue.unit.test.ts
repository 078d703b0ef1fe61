import { expect, test } from "vitest";
import { KeyedQueue } from "../src/keyed-queue.js";

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

test("jobs of one key run in submission order, one at a time", async () => {
  const queue = new KeyedQueue();
  const order: string[] = [];
  const gate = deferred();
  const first = queue.run("a", async () => {
    await gate.promise;
    order.push("a1");
  });
  const second = queue.run("a", async () => {
    order.push("a2");
  });
  const other = queue.run("b", async () => {
    order.push("b1");
  });
  await other;
  expect(order).toEqual(["b1"]); // another key is not held up by a1
  gate.resolve();
  await Promise.all([first, second]);
  expect(order).toEqual(["b1", "a1", "a2"]);
  expect(queue.size).toBe(0);
});

test("a failed job rejects its caller but does not block the next job of its key", async () => {
  const queue = new KeyedQueue();
  const failed = queue.run("a", async () => {
    throw new Error("boom");
  });
  const next = queue.run("a", async () => "ran");
  await expect(failed).rejects.toThrow("boom");
  await expect(next).resolves.toBe("ran");
});
