/**
 * API keys as `caller:key` pairs. Only SHA-256 digests of the keys are kept in memory, and a presented key is
 * compared against every configured digest with crypto.timingSafeEqual (no early exit), so neither the response
 * time nor a heap dump reveals a key.
 */
import { createHash, timingSafeEqual } from "node:crypto";

/** Callers name Redis keys (`ratelimit:<caller>`) and metric labels: keep them short and plain. */
const CALLER_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
export const MIN_KEY_LENGTH = 16;

export interface ApiKeyEntry {
  caller: string;
  digest: Buffer;
}

export function digestOf(key: string): Buffer {
  return createHash("sha256").update(key, "utf8").digest();
}

/**
 * Parses `caller:key` entries (already split into lines or comma-separated parts). Blank entries and lines starting
 * with `#` are skipped. Throws an Error naming the source and the entry number (never the key) on bad input.
 */
export function parseApiKeys(entries: readonly string[], source: string): ApiKeyEntry[] {
  const parsed: ApiKeyEntry[] = [];
  const seen = new Set<string>();
  entries.forEach((raw, index) => {
    const entry = raw.trim();
    if (entry === "" || entry.startsWith("#")) return;
    const where = `${source} entry ${index + 1}`;
    const colon = entry.indexOf(":");
    if (colon < 0) throw new Error(`${where}: expected caller:key`);
    const caller = entry.slice(0, colon).trim();
    const key = entry.slice(colon + 1).trim();
    if (!CALLER_PATTERN.test(caller)) {
      throw new Error(`${where}: caller must be 1-64 characters of A-Z a-z 0-9 . _ - (got "${caller.slice(0, 64)}")`);
    }
    if (key.length < MIN_KEY_LENGTH || /\s/.test(key)) {
      throw new Error(`${where} (caller ${caller}): key must be at least ${MIN_KEY_LENGTH} characters without spaces`);
    }
    const digest = digestOf(key);
    const hex = digest.toString("hex");
    if (seen.has(hex)) throw new Error(`${where} (caller ${caller}): the same key is configured twice`);
    seen.add(hex);
    parsed.push({ caller, digest });
  });
  return parsed;
}

/** GATEWAY_API_KEYS: comma-separated pairs. */
export function parseApiKeyList(value: string): ApiKeyEntry[] {
  return parseApiKeys(value.split(","), "GATEWAY_API_KEYS");
}

/** GATEWAY_API_KEYS_FILE contents: one pair per line. */
export function parseApiKeyFile(text: string, path: string): ApiKeyEntry[] {
  return parseApiKeys(text.split(/\r?\n/), `GATEWAY_API_KEYS_FILE ${path}`);
}

/** The caller whose key this is, or undefined. Compares against every entry so the time does not depend on which. */
export function findCaller(entries: readonly ApiKeyEntry[], presentedKey: string): string | undefined {
  const presented = digestOf(presentedKey);
  let match: string | undefined;
  for (const entry of entries) {
    if (timingSafeEqual(entry.digest, presented) && match === undefined) match = entry.caller;
  }
  return match;
}
