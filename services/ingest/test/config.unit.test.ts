import { isKnownTaskType } from "@tm/flow";
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

test("only the contract's task types are known", () => {
  for (const type of ["echo", "sleep", "checksum", "flaky", "fail"]) expect(isKnownTaskType(type)).toBe(true);
  expect(isKnownTaskType("teleport")).toBe(false);
});
