import type { DeadLetter } from "@tm/flow";
import { describe, expect, test } from "vitest";
import { deadLetterLabels } from "../src/labels.js";

const letter = (overrides: Partial<DeadLetter>): DeadLetter => ({
  id: "TASKS:1",
  subject: "tasks.worker.high",
  consumer: "worker-tasks-worker-high",
  reason: "exhausted",
  error: "boom",
  attempts: 5,
  at: new Date().toISOString(),
  ...overrides,
});

describe("deadLetterLabels", () => {
  test("a task's type and priority become labels", () => {
    expect(deadLetterLabels(letter({ message: { type: "fail", priority: "high" } }))).toEqual({
      reason: "exhausted",
      type: "fail",
      priority: "high",
    });
  });

  test.each([
    ["an unknown type and priority", { type: "x".repeat(200), priority: "urgent" }],
    ["non-string fields", { type: 42, priority: ["high"] }],
    ["a body that is not an object", "not json at all"],
    ["no body (raw text only)", undefined],
  ])("%s: other, so series stay bounded", (_name, message) => {
    expect(deadLetterLabels(letter({ reason: "invalid", message }))).toEqual({
      reason: "invalid",
      type: "other",
      priority: "other",
    });
  });
});
