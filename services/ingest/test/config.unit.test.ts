import { ConfigError, loadConfig } from "@tm/kit";
import { expect, test } from "vitest";
import { ingest } from "../src/service.js";

const shape = ingest.config!;

test("defaults match the conventions", () => {
  const config = loadConfig(shape, {});
  expect(config).toMatchObject({
    ENRICHER_URL: "http://127.0.0.1:8081",
    ENRICHER_TIMEOUT_MS: 2000,
    INGEST_CONCURRENCY: 32,
  });
});

test("a bad ENRICHER_URL, ENRICHER_TIMEOUT_MS or INGEST_CONCURRENCY is named", () => {
  expect(() => loadConfig(shape, { ENRICHER_URL: "enricher:8081" })).toThrow(/ENRICHER_URL: must be an http\(s\) URL/);
  expect(() => loadConfig(shape, { ENRICHER_URL: "ftp://enricher" })).toThrow(ConfigError);
  expect(() => loadConfig(shape, { ENRICHER_TIMEOUT_MS: "0" })).toThrow(/ENRICHER_TIMEOUT_MS/);
  expect(() => loadConfig(shape, { INGEST_CONCURRENCY: "many" })).toThrow(/INGEST_CONCURRENCY/);
});

test("the contract's task types are known, and with TASK_TYPES the deployment's own too", () => {
  const builtIn = loadConfig(shape, {}).TASK_TYPES;
  for (const type of ["echo", "sleep", "checksum", "flaky", "fail"]) expect(builtIn.has(type)).toBe(true);
  expect(builtIn.has("teleport")).toBe(false);
  const own = loadConfig(shape, { TASK_TYPES: "teleport, send-email" }).TASK_TYPES;
  expect(own.has("teleport") && own.has("send-email") && own.has("echo")).toBe(true);
  expect(() => loadConfig(shape, { TASK_TYPES: "a=b" })).toThrow(/TASK_TYPES: "a=b" is not a task type name/);
});
