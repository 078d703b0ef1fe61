#!/usr/bin/env node
/**
 * Copies the repository's configs into k8s/configs/ (kustomize only reads files under its own directory).
 *   node k8s/sync-configs.mjs            copy
 *   node k8s/sync-configs.mjs --check    fail when a copy differs from its original
 * test/deployment.int.test.ts runs the same comparison.
 */
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** [original, copy] relative to the repository root. The NATS auth.conf copy is written by configs/nats/render.mjs. */
export const CONFIG_COPIES = [
  ["envoy/envoy.yaml", "k8s/configs/envoy/envoy.yaml"],
  ["configs/nats/auth.conf", "k8s/configs/nats/auth.conf"],
  ["configs/otel-collector/config.yaml", "k8s/configs/otel-collector/config.yaml"],
  ["configs/tempo/tempo.yaml", "k8s/configs/tempo/tempo.yaml"],
  ["configs/loki/loki.yaml", "k8s/configs/loki/loki.yaml"],
  ["configs/prometheus/alerts.yml", "k8s/configs/prometheus/alerts.yml"],
  [
    "configs/grafana/provisioning/datasources/datasources.yaml",
    "k8s/configs/grafana/provisioning/datasources/datasources.yaml",
  ],
  [
    "configs/grafana/provisioning/dashboards/dashboards.yaml",
    "k8s/configs/grafana/provisioning/dashboards/dashboards.yaml",
  ],
  ["configs/grafana/dashboards/pipeline-overview.json", "k8s/configs/grafana/dashboards/pipeline-overview.json"],
  ["configs/grafana/dashboards/task-drill-down.json", "k8s/configs/grafana/dashboards/task-drill-down.json"],
];

/** Copies whose content differs from the original (or that are missing). */
export function staleCopies() {
  return CONFIG_COPIES.filter(([original, copy]) => {
    try {
      return !readFileSync(join(root, original)).equals(readFileSync(join(root, copy)));
    } catch {
      return true;
    }
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const stale = staleCopies();
  if (process.argv.includes("--check")) {
    for (const [original, copy] of stale) console.error(`${copy} differs from ${original}`);
    process.exit(stale.length > 0 ? 1 : 0);
  }
  for (const [original, copy] of stale) {
    mkdirSync(dirname(join(root, copy)), { recursive: true });
    copyFileSync(join(root, original), join(root, copy));
  }
}
