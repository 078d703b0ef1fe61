import type { StoredResult } from "@tm/store";
import { expect, test } from "vitest";
import { invalidIdProblem, notFound, toResultResponse } from "../src/results.js";

const stored: StoredResult = {
  taskId: "0b6f5b8e-8f3e-4a34-9d53-1c1f6f0e8a11",
  type: "echo",
  output: { hello: "world" },
  attempts: 2,
  completedAt: "2026-01-01T00:00:00.000Z",
  durationMs: 12,
  generation: 0,
};

test("the response carries exactly the contract's fields", () => {
  const body = toResultResponse(stored);
  expect(Object.keys(body).sort()).toEqual(["attempts", "completedAt", "output", "taskId", "type"]);
  expect(body).toEqual({
    taskId: stored.taskId,
    type: "echo",
    output: { hello: "world" },
    attempts: 2,
    completedAt: "2026-01-01T00:00:00.000Z",
  });
});

test("a task that returned nothing has output null, so the field is still present in JSON", () => {
  const body = toResultResponse({ ...stored, output: undefined });
  expect(JSON.parse(JSON.stringify(body))).toHaveProperty("output", null);
});

test("ids must be UUIDs", () => {
  expect(invalidIdProblem(stored.taskId)).toBeUndefined();
  expect(invalidIdProblem("not-a-uuid")).toEqual({ error: "invalid_id", message: "id: must be a UUID" });
  expect(invalidIdProblem("")).toBeDefined();
  expect(notFound(stored.taskId)).toMatchObject({ error: "not_found" });
  expect(notFound(stored.taskId).message).toContain(stored.taskId);
});
