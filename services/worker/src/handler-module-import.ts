/**
 * Importing a handler module (WORKER_HANDLER_MODULES) and reading its list of handlers: what the worker does at start
 * (handler-modules.ts, which checks them) and a handler thread when it first runs one of the module's types
 * (handler-thread.ts). Nothing else is imported here, so that the threads' bundle stays small.
 */
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";

/** A path ("./x.mjs", "/app/x.mjs") is taken from `cwd`; anything else (a package name, a file: URL) is imported as it
 *  is, a package resolved from the importing module (the worker's node_modules). */
export async function importModule(specifier: string, cwd: string): Promise<Record<string, unknown>> {
  const isPath = specifier.startsWith(".") || isAbsolute(specifier);
  const url = isPath ? pathToFileURL(resolve(cwd, specifier)).href : specifier;
  return (await import(url)) as Record<string, unknown>;
}

/** The module's `handlers` (an array) or default export (a handler or an array), unchecked. */
export function handlersIn(exported: Record<string, unknown>, fail: (problem: string) => Error): unknown[] {
  const given = exported.handlers ?? exported.default;
  if (given === undefined) {
    throw fail("exports no handlers: export `handlers` (an array of { type, payload?, run }) or a default export");
  }
  const list = Array.isArray(given) ? given : [given];
  if (list.length === 0) throw fail("exports an empty list of handlers");
  return list;
}
