/** YAML files read as plain data (compose, Envoy, kustomize output), for cross-checking against the code. */
import { readFileSync } from "node:fs";
import { parseAllDocuments, parse as parseYaml } from "yaml";

/** One YAML document; compose anchors and merge keys (`<<: *x`) are resolved. */
export function readYaml<T = unknown>(file: string): T {
  return parseYaml(readFileSync(file, "utf8"), { merge: true }) as T;
}

/** Every non-empty document of a multi-document stream (e.g. `kubectl kustomize` output). */
export function parseYamlDocuments<T = unknown>(text: string): T[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`invalid YAML: ${doc.errors[0]?.message}`);
      return doc.toJS() as T;
    })
    .filter((doc) => doc !== null && doc !== undefined);
}
