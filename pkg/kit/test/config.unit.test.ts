import { describe, expect, test } from "vitest";
import { ConfigError, loadConfig, nonNegativeInt } from "../src/config.js";

describe("loadConfig with nonNegativeInt", () => {
  const shape = { WINDOW_MS: nonNegativeInt.default(50) };

  test("unset or empty takes the default; 0 and positive integers are accepted", () => {
    expect(loadConfig(shape, {}).WINDOW_MS).toBe(50);
    expect(loadConfig(shape, { WINDOW_MS: "" }).WINDOW_MS).toBe(50);
    expect(loadConfig(shape, { WINDOW_MS: "0" }).WINDOW_MS).toBe(0);
    expect(loadConfig(shape, { WINDOW_MS: "20" }).WINDOW_MS).toBe(20);
  });

  test.each([
    ["-1", "must be >= 0"],
    ["1.5", "must be an integer"],
    ["soon", "must be a number"],
  ])("%s is refused with a message naming the variable: %s", (value, message) => {
    expect(() => loadConfig(shape, { WINDOW_MS: value })).toThrow(ConfigError);
    expect(() => loadConfig(shape, { WINDOW_MS: value })).toThrow(`WINDOW_MS: ${message} (got "${value}")`);
  });

  test("FLOW_OUTAGE_HOLD_MS uses it: 0 (never hold) is valid, a negative value is not", () => {
    expect(loadConfig({}, { FLOW_OUTAGE_HOLD_MS: "0" }).FLOW_OUTAGE_HOLD_MS).toBe(0);
    expect(() => loadConfig({}, { FLOW_OUTAGE_HOLD_MS: "-5" })).toThrow("FLOW_OUTAGE_HOLD_MS: must be >= 0");
  });
});
