import { expect, test } from "vitest";
import { generatedIdempotencyKey } from "../src/submit-retry.js";

test("a made-up key is taskctl's and unique", () => {
  const [a, b] = [generatedIdempotencyKey(), generatedIdempotencyKey()];
  expect(a).toMatch(/^taskctl-[0-9a-f-]{36}$/);
  expect(a).not.toBe(b);
});
