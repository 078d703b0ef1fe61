import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { BUILT_IN_ONLY } from "@tm/flow";
import { ListTasksRequestSchema, TaskState } from "@tm/proto";
import { expect, test } from "vitest";
import { DEFAULT_STALLED_FOR_SECONDS, parseRequeueRequest, parseTaskFilter } from "../src/admin-validation.js";
import { rejection } from "./rejection.js";

const A = "0b7d7a52-6c1f-4f57-8a37-3d2f1e0c9b8a";
const B = "7f0c3f1e-5b7a-4c35-9d0e-2f3a4b5c6d7e";

test("an unset threshold is ten minutes, 0 is 0, and repeated ids are requeued once, in order", () => {
  expect(DEFAULT_STALLED_FOR_SECONDS).toBe(600);
  expect(parseRequeueRequest([A, B, A], undefined)).toEqual({ taskIds: [A, B], stalledForMs: 600_000 });
  expect(parseRequeueRequest([B], 0)).toEqual({ taskIds: [B], stalledForMs: 0 });
  expect(parseRequeueRequest([B], 90).stalledForMs).toBe(90_000);
});

test.each([
  [[], /^task_ids: give the ids of the tasks to requeue$/],
  [["nope"], /^task_ids: each id must be a UUID \(got "nope"\)$/],
  [[A, ""], /^task_ids: each id must be a UUID \(got ""\)$/],
  [Array.from({ length: 501 }, () => A), /^task_ids: at most 500 per call \(got 501\)$/],
])("%j is INVALID_ARGUMENT naming task_ids", (ids, message) => {
  const error = rejection(() => parseRequeueRequest(ids as string[], undefined));
  expect(error.code).toBe(Code.InvalidArgument);
  expect(error.rawMessage).toMatch(message);
});

test("ListTasks' stalled_for_seconds lists unfinished tasks unchanged since now minus that; with a finished state it is refused", () => {
  const now = Date.parse("2026-03-01T12:00:00Z");
  const request = (init: Parameters<typeof create<typeof ListTasksRequestSchema>>[1]) =>
    create(ListTasksRequestSchema, init);
  expect(parseTaskFilter(request({ stalledForSeconds: 600 }), BUILT_IN_ONLY, now)).toEqual({
    changedBeforeMs: now - 600_000,
  });
  expect(parseTaskFilter(request({ stalledForSeconds: 0 }), BUILT_IN_ONLY, now)).toEqual({ changedBeforeMs: now });
  expect(parseTaskFilter(request({}), BUILT_IN_ONLY, now)).toEqual({});
  expect(parseTaskFilter(request({ state: TaskState.SCHEDULED, stalledForSeconds: 60 }), BUILT_IN_ONLY, now)).toEqual({
    state: "SCHEDULED",
    changedBeforeMs: now - 60_000,
  });
  const error = rejection(() =>
    parseTaskFilter(request({ state: TaskState.SUCCEEDED, stalledForSeconds: 60 }), BUILT_IN_ONLY, now),
  );
  expect(error.code).toBe(Code.InvalidArgument);
  expect(error.rawMessage).toBe("stalled_for_seconds: only unfinished tasks stall (state SUCCEEDED is finished)");
});
