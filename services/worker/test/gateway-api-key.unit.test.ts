import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, createLogger } from "@tm/kit";
import { afterAll, describe, expect, test } from "vitest";
import { gatewayApiKey, parseGatewayKeyFile } from "../src/gateway-api-key.js";

const dir = mkdtempSync(join(tmpdir(), "tm-worker-key-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const log = createLogger("worker", "silent");

describe("the workers' gateway key", () => {
  test("from the variable, from a file, or none; not both", async () => {
    expect(await gatewayApiKey({ WORKER_GATEWAY_API_KEY: "k".repeat(32) }, log)).toBe("k".repeat(32));
    expect(await gatewayApiKey({}, log)).toBeUndefined();
    const path = join(dir, "api-key");
    writeFileSync(path, `${"a".repeat(32)}\n`);
    const both = gatewayApiKey({ WORKER_GATEWAY_API_KEY: "k".repeat(32), WORKER_GATEWAY_API_KEY_FILE: path }, log);
    await expect(both).rejects.toThrow(ConfigError);
    await expect(both).rejects.toThrow("set one of WORKER_GATEWAY_API_KEY and WORKER_GATEWAY_API_KEY_FILE, not both");
  });

  test("a file's key is read again once the file changes (a rotated Secret), without a restart", async () => {
    const path = join(dir, "rotated");
    writeFileSync(path, `${"a".repeat(32)}\n`);
    const key = await gatewayApiKey({ WORKER_GATEWAY_API_KEY_FILE: path }, log);
    expect(typeof key).toBe("function");
    const current = key as () => Promise<string>;
    expect(await current()).toBe("a".repeat(32));
    writeFileSync(path, "b".repeat(40));
    // The file is checked at most every 2 s: the new key within a few.
    await expect.poll(current, { timeout: 5_000, interval: 200 }).toBe("b".repeat(40));
  });

  test("a file that is missing, empty or holds more than a key stops the start naming it", async () => {
    await expect(gatewayApiKey({ WORKER_GATEWAY_API_KEY_FILE: join(dir, "missing") }, log)).rejects.toThrow(
      /^WORKER_GATEWAY_API_KEY_FILE .*missing: cannot read it \(ENOENT\)$/,
    );
    const empty = join(dir, "empty");
    writeFileSync(empty, "\n");
    await expect(gatewayApiKey({ WORKER_GATEWAY_API_KEY_FILE: empty }, log)).rejects.toThrow(ConfigError);
    expect(() => parseGatewayKeyFile("\n", "/k")).toThrow(
      "WORKER_GATEWAY_API_KEY_FILE /k is empty: it must hold the key",
    );
    expect(() => parseGatewayKeyFile("a b", "/k")).toThrow("must hold one key (one line, without spaces)");
    expect(() => parseGatewayKeyFile("a\nb\n", "/k")).toThrow("must hold one key (one line, without spaces)");
    expect(parseGatewayKeyFile("# the workers' key\n  key-1\n", "/k")).toBe("key-1");
  });
});
