/**
 * The service name the telemetry preload reports (the `service.name` resource attribute). OTEL_SERVICE_NAME wins
 * whenever it is set, as every deployment and the test kit do. Without it, a service started by hand
 * (`node --import @tm/kit/telemetry services/worker/dist/bundle/index.js`) is named after its entry script: the name of
 * the nearest package.json above it without its scope ("@tm/worker" → "worker", which also holds in a container,
 * where the deployed package sits at /app), else the `services/<name>/` directory the script is in. "task-manager"
 * only when neither says anything.
 */
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

export const FALLBACK_SERVICE_NAME = "task-manager";

export interface ServiceNameSources {
  /** The environment: OTEL_SERVICE_NAME, then TM_SERVICE, when set and not empty. */
  env: Readonly<Record<string, string | undefined>>;
  /** The entry script (process.argv[1]); undefined for `node -e` or the REPL. */
  entry?: string | undefined;
  /** The "name" of the nearest package.json above the entry script (see nearestPackageName). */
  packageName?: string | undefined;
}

/** Pure: the service name from what the process knows about itself. */
export function resolveServiceName({ env, entry, packageName }: ServiceNameSources): string {
  return (
    env.OTEL_SERVICE_NAME ||
    env.TM_SERVICE ||
    withoutScope(packageName) ||
    serviceDirectory(entry) ||
    FALLBACK_SERVICE_NAME
  );
}

/** "@tm/worker" → "worker", "worker" → "worker"; undefined for nothing usable. */
function withoutScope(packageName: string | undefined): string | undefined {
  const name = packageName?.trim().replace(/^@[^/]*\//, "");
  return name || undefined;
}

/** The `<name>` of the last `services/<name>/` in the path (either slash), e.g. services/worker/dist/index.js. */
function serviceDirectory(entry: string | undefined): string | undefined {
  const parts = entry?.split(/[\\/]/) ?? [];
  // The name is a directory: at least one more part (the file) follows it.
  for (let i = parts.length - 3; i >= 0; i--) {
    if (parts[i] === "services" && parts[i + 1]) return parts[i + 1];
  }
  return undefined;
}

/**
 * The "name" of the nearest package.json with one, from the entry script's directory up to the root (a nameless
 * package.json, such as a `{"type":"module"}` next to built files, or an unreadable one is passed over).
 * `readFile` returns a file's text or undefined when there is none (injected by the unit tests).
 */
export function nearestPackageName(
  entry: string | undefined,
  readFile: (path: string) => string | undefined = readIfPresent,
): string | undefined {
  if (!entry) return undefined;
  for (let dir = dirname(resolve(entry)); ; dir = dirname(dir)) {
    const text = readFile(join(dir, "package.json"));
    if (text !== undefined) {
      const name = packageNameOf(text);
      if (name) return name;
    }
    if (dirname(dir) === dir) return undefined;
  }
}

function packageNameOf(text: string): string | undefined {
  try {
    const name: unknown = (JSON.parse(text) as { name?: unknown } | null)?.name;
    return typeof name === "string" && name.trim() ? name : undefined;
  } catch {
    return undefined;
  }
}

function readIfPresent(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}
