/** What a dead letter keeps of a message: whole when it fits its 64 KiB, else without its payload, else as text. */
import { describe, expect, test } from "vitest";
import { letterMessage } from "../src/consume.js";
import { DeadLetterSchema, SIZE_LIMITS } from "../src/schemas.js";

const big = (bytes: number) => "x".repeat(bytes);

describe("letterMessage", () => {
  test("a message that fits is kept whole", () => {
    const message = { taskId: "t", generation: 2, payload: { a: 1 } };
    expect(letterMessage(message)).toEqual({ message });
  });

  test("a payload too large is left out; the rest (task id, generation) is kept", () => {
    const message = { taskId: "t", generation: 2, payload: { blob: big(SIZE_LIMITS.deadLetterMessageBytes) } };
    expect(letterMessage(message)).toEqual({ message: { taskId: "t", generation: 2 } });
  });

  test("too large even without a payload: kept as text, cut", () => {
    const kept = letterMessage({ taskId: "t", note: big(SIZE_LIMITS.deadLetterMessageBytes) });
    expect("raw" in kept && kept.raw.startsWith('{"taskId":"t","note":"xxx')).toBe(true);
  });

  test("every answer is a valid dead letter", () => {
    for (const message of [{ payload: big(300_000) }, { other: big(300_000) }, { small: 1 }]) {
      const letter = {
        id: "TASKS:1",
        subject: "tasks.worker.medium",
        consumer: "worker",
        reason: "exhausted",
        error: "boom",
        attempts: 1,
        at: new Date().toISOString(),
        ...letterMessage(message),
      };
      expect(DeadLetterSchema.safeParse(letter).success).toBe(true);
    }
  });
});
