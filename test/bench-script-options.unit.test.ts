/** The standalone bench scripts' options (bench/src/script-options.ts): a positive whole number or a named refusal. */
import { expect, test } from "vitest";
import { positiveOption } from "../bench/src/script-options.js";

test("an option's value, its fallback when absent, and a refusal naming it for anything but a positive integer", () => {
  const argv = ["node", "script.mjs", "--tasks", "200", "--batch", "0", "--rounds", "two"];
  expect(positiveOption("--tasks", 5, argv)).toBe(200);
  expect(positiveOption("--in-flight", 32, argv)).toBe(32);
  expect(() => positiveOption("--batch", 100, argv)).toThrow("--batch must be a positive integer, got 0");
  expect(() => positiveOption("--rounds", 2, argv)).toThrow("--rounds must be a positive integer, got two");
  expect(() => positiveOption("--last", 1, ["node", "s", "--last"])).toThrow(
    "--last must be a positive integer, got undefined",
  );
});
