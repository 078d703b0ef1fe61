import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, test } from "vitest";
import { FALLBACK_SERVICE_NAME, nearestPackageName, resolveServiceName } from "../src/service-name.js";

describe("resolveServiceName", () => {
  const entry = "/repo/services/worker/dist/index.js";

  test("OTEL_SERVICE_NAME wins over everything the process could derive", () => {
    expect(resolveServiceName({ env: { OTEL_SERVICE_NAME: "worker-eu" }, entry, packageName: "@tm/worker" })).toBe(
      "worker-eu",
    );
    expect(resolveServiceName({ env: { OTEL_SERVICE_NAME: "gateway", TM_SERVICE: "other" } })).toBe("gateway");
  });

  test("an empty OTEL_SERVICE_NAME counts as unset", () => {
    expect(resolveServiceName({ env: { OTEL_SERVICE_NAME: "" }, entry, packageName: "@tm/worker" })).toBe("worker");
  });

  test("TM_SERVICE comes next (as before)", () => {
    expect(resolveServiceName({ env: { TM_SERVICE: "audit" }, entry, packageName: "@tm/worker" })).toBe("audit");
  });

  test("without them: the nearest package.json's name without its scope", () => {
    expect(resolveServiceName({ env: {}, entry, packageName: "@tm/worker" })).toBe("worker");
    // In a container the deployed package is /app, so only its package.json names it.
    expect(resolveServiceName({ env: {}, entry: "/app/dist/index.js", packageName: "@tm/result-store" })).toBe(
      "result-store",
    );
    expect(resolveServiceName({ env: {}, packageName: "enricher" })).toBe("enricher");
  });

  test("without a package name: the services/<name>/ directory of the entry script", () => {
    expect(resolveServiceName({ env: {}, entry })).toBe("worker");
    expect(resolveServiceName({ env: {}, entry: "services/result-store/dist/index.js" })).toBe("result-store");
    expect(resolveServiceName({ env: {}, entry: "C:\\src\\tm\\services\\notifier\\dist\\index.js" })).toBe("notifier");
    // The innermost services/ directory when the checkout itself sits under one.
    expect(resolveServiceName({ env: {}, entry: "/home/services/tm/services/audit/dist/index.js" })).toBe("audit");
    expect(resolveServiceName({ env: {}, entry, packageName: " " })).toBe("worker");
  });

  test('"task-manager" only when nothing names the service', () => {
    expect(FALLBACK_SERVICE_NAME).toBe("task-manager");
    expect(resolveServiceName({ env: {} })).toBe("task-manager");
    expect(resolveServiceName({ env: {}, entry: "/tmp/script.mjs" })).toBe("task-manager");
    // A file named like a directory is not one.
    expect(resolveServiceName({ env: {}, entry: "/repo/services/worker.js" })).toBe("task-manager");
    expect(resolveServiceName({ env: {}, packageName: "@tm/" })).toBe("task-manager");
  });
});

describe("nearestPackageName", () => {
  /** A file system of package.json texts by path. */
  const files = (entries: Record<string, string>) => (path: string) => entries[path];

  test("the closest package.json above the entry script", () => {
    const read = files({
      "/repo/package.json": JSON.stringify({ name: "task-manager" }),
      "/repo/services/worker/package.json": JSON.stringify({ name: "@tm/worker" }),
    });
    expect(nearestPackageName("/repo/services/worker/dist/index.js", read)).toBe("@tm/worker");
    expect(nearestPackageName("/repo/scripts/stack.mjs", read)).toBe("task-manager");
  });

  test("nameless, malformed and unreadable package.json files are passed over", () => {
    const read = files({
      "/app/package.json": JSON.stringify({ name: "@tm/gateway" }),
      "/app/dist/package.json": JSON.stringify({ type: "module" }),
      "/app/dist/lib/package.json": "{ not json",
      "/app/dist/lib/deep/package.json": "null",
    });
    expect(nearestPackageName("/app/dist/lib/deep/index.js", read)).toBe("@tm/gateway");
  });

  test("undefined without an entry script or any package.json up to the root", () => {
    const seen: string[] = [];
    const read = (path: string) => {
      seen.push(path);
      return undefined;
    };
    expect(nearestPackageName(undefined, read)).toBeUndefined();
    expect(seen).toEqual([]);
    expect(nearestPackageName("/a/b/index.js", read)).toBeUndefined();
    expect(seen).toEqual(["/a/b/package.json", "/a/package.json", "/package.json"]);
  });

  describe("on disk", () => {
    let dir: string | undefined;
    afterEach(() => {
      if (dir) rmSync(dir, { recursive: true, force: true });
      dir = undefined;
    });

    test("reads the real files by default", () => {
      dir = mkdtempSync(join(tmpdir(), "tm-service-name-"));
      mkdirSync(join(dir, "services", "worker", "dist"), { recursive: true });
      writeFileSync(join(dir, "services", "worker", "package.json"), JSON.stringify({ name: "@tm/worker" }));
      const entry = join(dir, "services", "worker", "dist", "index.js");
      expect(nearestPackageName(entry)).toBe("@tm/worker");
      expect(resolveServiceName({ env: {}, entry, packageName: nearestPackageName(entry) })).toBe("worker");
    });
  });
});
