import { createHash } from "node:crypto";
import { EnrichmentSchema } from "@tm/flow";
import { describe, expect, test } from "vitest";
import { ENRICHER_VERSION, enrich, estimateCost, MAX_PAYLOAD_KEYS } from "../src/enrich.js";

const createdAt = "2026-01-02T03:04:05.000Z";

describe("enrich", () => {
  test("measures the payload's JSON: UTF-8 bytes, sha256, top-level field count", () => {
    const payload = { word: "héllo", n: 1 }; // é is 2 bytes in UTF-8
    const json = JSON.stringify(payload);
    const now = new Date("2026-01-02T03:04:06.000Z");
    const result = enrich({ type: "echo", payload, createdAt }, now);
    expect(result.payloadBytes).toBe(json.length + 1);
    expect(result.payloadSha256).toBe(createHash("sha256").update(json).digest("hex"));
    expect(result.fieldCount).toBe(2);
    expect(result.receivedAt).toBe(createdAt);
    expect(result.enrichedAt).toBe(now.toISOString());
    expect(result.payloadKeys).toEqual(["n", "word"]);
    expect(result.enricherVersion).toBe(ENRICHER_VERSION);
    expect(EnrichmentSchema.safeParse(result).success).toBe(true);
  });

  test("an empty payload has no fields and hashes '{}'", () => {
    const result = enrich({ type: "echo", payload: {}, createdAt });
    expect(result).toMatchObject({ payloadBytes: 2, fieldCount: 0, payloadKeys: [] });
    expect(result.payloadSha256).toBe(createHash("sha256").update("{}").digest("hex"));
  });

  test("lists at most MAX_PAYLOAD_KEYS keys, sorted, but counts them all", () => {
    const payload = Object.fromEntries(Array.from({ length: 120 }, (_, i) => [`k${String(i).padStart(3, "0")}`, i]));
    const result = enrich({ type: "echo", payload, createdAt });
    expect(result.fieldCount).toBe(120);
    expect(result.payloadKeys).toHaveLength(MAX_PAYLOAD_KEYS);
    expect(result.payloadKeys[0]).toBe("k000");
    expect(result.payloadKeys).toEqual([...result.payloadKeys].sort());
  });
});

describe("estimateCost", () => {
  test("sleep costs its milliseconds", () => {
    expect(estimateCost({ type: "sleep", payload: { ms: 250 } })).toBe(250);
  });
  test("checksum costs rounds × data length", () => {
    expect(estimateCost({ type: "checksum", payload: { data: "abcd", rounds: 10 } })).toBe(40);
  });
  test("other types cost 1", () => {
    for (const type of ["echo", "flaky", "fail", "something-new"]) expect(estimateCost({ type, payload: {} })).toBe(1);
  });
  test("missing or malformed cost fields count as 0 instead of throwing", () => {
    expect(estimateCost({ type: "sleep", payload: {} })).toBe(0);
    expect(estimateCost({ type: "sleep", payload: { ms: "lots" } })).toBe(0);
    expect(estimateCost({ type: "sleep", payload: { ms: -5 } })).toBe(0);
    expect(estimateCost({ type: "checksum", payload: { data: 42, rounds: 3 } })).toBe(0);
  });
});
