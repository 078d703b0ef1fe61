import { ConfigError, loadConfig } from "@tm/kit";
import { expect, test } from "vitest";
import { workerConfig } from "../src/config.js";

test("defaults: concurrency 8, weights 6,3,1, timeout 60 s", () => {
  const config = loadConfig(workerConfig, {});
  expect(config.WORKER_CONCURRENCY).toBe(8);
  expect(config.WORKER_PRIORITY_WEIGHTS).toEqual({ high: 6, medium: 3, low: 1 });
  expect(config.TASK_TIMEOUT_MS).toBe(60_000);
});

test.each([
  ["0,0,0", /WORKER_PRIORITY_WEIGHTS: at least one weight must be greater than 0 \(got "0,0,0"\)/],
  ["6,3", /WORKER_PRIORITY_WEIGHTS: must be three non-negative integers for high,medium,low/],
])("rejects WORKER_PRIORITY_WEIGHTS=%j at start-up, naming the variable", (value, message) => {
  expect(() => loadConfig(workerConfig, { WORKER_PRIORITY_WEIGHTS: value })).toThrow(ConfigError);
  expect(() => loadConfig(workerConfig, { WORKER_PRIORITY_WEIGHTS: value })).toThrow(message);
});

test("rejects a non-positive WORKER_CONCURRENCY", () => {
  expect(() => loadConfig(workerConfig, { WORKER_CONCURRENCY: "0" })).toThrow(/WORKER_CONCURRENCY: must be > 0/);
});
