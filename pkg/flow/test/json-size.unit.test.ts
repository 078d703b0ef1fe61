import { describe, expect, test } from "vitest";
import { jsonByteLength, jsonSizeProblem, jsonWithinBytes } from "../src/json-size.js";
import { TaskMessageSchema } from "../src/schemas.js";

const exact = (value: unknown, max: number) => jsonByteLength(value) <= max;

describe("jsonWithinBytes", () => {
  // Values whose JSON is near the limit, of every kind the bound handles or hands to the exact measure.
  const cases: Array<[string, unknown]> = [
    ["ascii string", "a".repeat(40)],
    ["escapes", '\u0001\u001f"\\\n'.repeat(8)],
    ["multi-byte", "é€😀".repeat(10)],
    ["numbers", [0, -0, 1.5, -1.7976931348623157e308, Number.NaN, Number.POSITIVE_INFINITY, 5e-324]],
    ["nested", { a: [1, { b: "x", c: null, d: true }], e: { f: { g: [] } } }],
    ["undefined members", { a: undefined, b: [undefined, 1], c: "z" }],
    ["sparse array", Object.assign(new Array(3), { 0: 1, 2: 3 })], // a hole is written as null
    ["a date", { at: new Date(0) }],
    ["toJSON", { toJSON: () => "short" }],
    ["a function member", { f: () => 1, a: "b" }],
    ["deep", JSON.parse(`${"[".repeat(40)}1${"]".repeat(40)}`)],
    ["null prototype", Object.assign(Object.create(null), { k: "v" })],
  ];

  test.each(cases)("%s: the same answer as writing the JSON, at every limit around its size", (_name, value) => {
    const size = jsonByteLength(value);
    for (const max of [0, 1, size - 1, size, size + 1, size * 6 + 100]) {
      expect(jsonWithinBytes(value, max), `max ${max} (size ${size})`).toBe(exact(value, max));
    }
  });

  test("a cycle still fails as JSON.stringify fails", () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    expect(() => jsonWithinBytes(cyclic, 1_000_000)).toThrow(TypeError);
  });
});

describe("jsonSizeProblem", () => {
  test("within: nothing; over: the limit and the size; not JSON: why, without throwing", () => {
    expect(jsonSizeProblem({ a: "x" }, 100)).toBeUndefined();
    expect(jsonSizeProblem({ a: "x".repeat(200) }, 100)).toBe("must be at most 100 bytes of JSON (got 208)");
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    expect(jsonSizeProblem(cyclic, 1_000_000)).toMatch(/^must be JSON \(Converting circular structure to JSON/);
    expect(jsonSizeProblem({ n: 1n }, 1_000_000)).toBe("must be JSON (Do not know how to serialize a BigInt)");
  });
});

test("a schema's byte limit names the limit and the size", () => {
  const result = TaskMessageSchema.safeParse({
    taskId: crypto.randomUUID(),
    type: "echo",
    priority: "medium",
    payload: { big: "x".repeat(300 * 1024) },
    createdAt: new Date().toISOString(),
  });
  expect(result.success).toBe(false);
  const issue = result.error?.issues.find((i) => i.path[0] === "payload");
  expect(issue?.message).toBe(`must be at most 262144 bytes of JSON (got ${300 * 1024 + 10})`);
});
