/** Renders the k8s/ kustomization with kubectl, when kubectl is installed. */
import { spawnSync } from "node:child_process";
import { parseYamlDocuments } from "./yaml.js";

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  // biome-ignore lint/suspicious/noExplicitAny: manifests are checked field by field by the tests
  spec?: any;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

export function kubectlAvailable(): boolean {
  return spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" }).status === 0;
}

/** `kubectl kustomize <dir>` parsed into objects; throws with kubectl's message when it fails. */
export function renderKustomize(dir: string): K8sObject[] {
  const result = spawnSync("kubectl", ["kustomize", dir], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`kubectl kustomize ${dir} failed:\n${result.stderr || result.error}`);
  return parseYamlDocuments<K8sObject>(result.stdout);
}
