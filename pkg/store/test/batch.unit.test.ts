import { describe, expect, test } from "vitest";
import { isRedisReplyError, perTurnBatcher } from "../src/batch.js";

describe("perTurnBatcher", () => {
  test("one turn's items go to one call, at most `max` each, and each caller gets its own result", async () => {
    const calls: number[][] = [];
    const double = perTurnBatcher(async (items: readonly number[]) => {
      calls.push([...items]);
      return items.map((n) => n * 2);
    }, 3);
    expect(await Promise.all([1, 2, 3, 4, 5].map(double))).toEqual([2, 4, 6, 8, 10]);
    expect(calls).toEqual([
      [1, 2, 3],
      [4, 5],
    ]);
    // A later turn is a new call; the same item again is run again (nothing cached).
    expect(await double(1)).toBe(2);
    expect(calls).toHaveLength(3);
  });

  test("when a call of several fails, each item runs alone and only the faulty one's caller sees the error", async () => {
    const calls: number[][] = [];
    const run = perTurnBatcher(
      async (items: readonly number[]) => {
        calls.push([...items]);
        if (items.includes(13)) throw new Error("13 refused");
        return items.map((n) => n);
      },
      10,
      () => true,
    );
    const outcomes = await Promise.allSettled([1, 13, 2].map(run));
    expect(outcomes).toEqual([
      { status: "fulfilled", value: 1 },
      { status: "rejected", reason: new Error("13 refused") },
      { status: "fulfilled", value: 2 },
    ]);
    expect(calls).toEqual([[1, 13, 2], [1], [13], [2]]);
  });

  test("a lone item's failure is its caller's, not retried", async () => {
    let calls = 0;
    const run = perTurnBatcher(async () => {
      calls++;
      throw new Error("down");
    }, 10);
    await expect(run(1)).rejects.toThrow("down");
    expect(calls).toBe(1);
  });

  test("with max 1 every item is its own call", async () => {
    const calls: number[][] = [];
    const run = perTurnBatcher(async (items: readonly number[]) => {
      calls.push([...items]);
      return [...items];
    }, 1);
    expect(await Promise.all([1, 2].map(run))).toEqual([1, 2]);
    expect(calls).toEqual([[1], [2]]);
  });

  test("a failure that is no item's fault (Redis unreachable) fails every caller at once, with no second call", async () => {
    const calls: number[][] = [];
    const run = perTurnBatcher(async (items: readonly number[]) => {
      calls.push([...items]);
      throw new Error("Connection is closed.");
    }, 10);
    const outcomes = await Promise.allSettled([1, 2, 3].map(run));
    expect(outcomes.map((o) => o.status)).toEqual(["rejected", "rejected", "rejected"]);
    expect(calls).toEqual([[1, 2, 3]]);
  });

  test("isRedisReplyError tells a reply from Redis from other failures", () => {
    const reply = Object.assign(new Error("WRONGTYPE Operation against a key holding the wrong kind of value"), {
      name: "ReplyError",
    });
    expect(isRedisReplyError(reply)).toBe(true);
    expect(isRedisReplyError(new Error("Connection is closed."))).toBe(false);
    expect(isRedisReplyError("ReplyError")).toBe(false);
  });
});
