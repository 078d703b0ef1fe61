import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { TypeLimitSchema } from "@tm/proto";
import { expect, test } from "vitest";
import { parseTypeLimit, typeLimitToProto } from "../src/type-limits.js";
import { rejection } from "./rejection.js";

const at = new Date("2026-12-06T01:00:00.000Z");
const limit = (init: Parameters<typeof create<typeof TypeLimitSchema>>[1]) => create(TypeLimitSchema, init);

test("a type's limits: what is set is kept (a burst defaults to 1), stamped with the time and the caller", () => {
  expect(parseTypeLimit(limit({ type: "sleep", globalConcurrency: 2 }), at, "ops")).toEqual({
    type: "sleep",
    globalConcurrency: 2,
    at: "2026-12-06T01:00:00.000Z",
    by: "ops",
  });
  const both = parseTypeLimit(limit({ type: "echo", globalConcurrency: 1, ratePerSecond: 0.5 }), at, "");
  expect(both).toMatchObject({ globalConcurrency: 1, rate: { perSecond: 0.5, burst: 1 } });
  expect(typeLimitToProto(both, 1)).toMatchObject({ type: "echo", ratePerSecond: 0.5, rateBurst: 1, running: 1 });
});

test.each([
  [{}, "limit.type: is required (known: echo, sleep, checksum, flaky, fail)"],
  [
    { type: "emial", globalConcurrency: 1 },
    'limit.type: unknown task type "emial" (known: echo, sleep, checksum, flaky, fail)',
  ],
  [
    { type: "sleep" },
    "limit: sets none of global_concurrency, rate_per_second and paused (to remove a type's limits: ClearTypeLimit)",
  ],
  [
    { type: "sleep", globalConcurrency: 10_001 },
    "limit.global_concurrency: must be from 1 to 10000 (0: none), not 10001",
  ],
  [{ type: "sleep", ratePerSecond: -1 }, "limit.rate_per_second: must be above 0 and at most 100000 (0: none), not -1"],
  [
    { type: "sleep", ratePerSecond: Number.NaN },
    "limit.rate_per_second: must be above 0 and at most 100000 (0: none), not NaN",
  ],
  [
    { type: "sleep", ratePerSecond: 1, rateBurst: 10_001 },
    "limit.rate_burst: must be from 1 to 10000 (0: 1), not 10001",
  ],
  [{ type: "sleep", globalConcurrency: 1, rateBurst: 5 }, "limit.rate_burst: needs rate_per_second"],
])("%j is INVALID_ARGUMENT: %s", (init, message) => {
  const error = rejection(() => parseTypeLimit(limit(init), at, ""));
  expect(error.code).toBe(Code.InvalidArgument);
  expect(error.rawMessage).toBe(message);
});

test("no limit at all is INVALID_ARGUMENT naming `limit`", () => {
  expect(rejection(() => parseTypeLimit(undefined, at, "")).rawMessage).toBe("limit: is required");
});
