/**
 * Helpers for checking the observability configs in configs/ (Prometheus, Grafana, Tempo, Loki, promtail, the
 * OpenTelemetry Collector) and the metric catalogue they are allowed to query. The catalogue is data, not prose, so
 * that one test can check dashboards/alerts against it and another can check it against what services register.
 */
import { readFileSync } from "node:fs";
import { parse } from "yaml";

export { findMetric, METRIC_CATALOGUE, type MetricDefinition, type MetricKind } from "./catalogue.js";
export { labelNamesIn, metricNamesIn } from "./promql.js";

/** Parses one YAML file; throws with the file name and the parser's line/column on a syntax error. */
export function loadYaml(path: string): unknown {
  const text = readFileSync(path, "utf8");
  try {
    return parse(text, { prettyErrors: true, strict: true, uniqueKeys: true });
  } catch (error) {
    throw new Error(`${path}: ${(error as Error).message}`);
  }
}

/** Parses one JSON file; throws naming the file. */
export function loadJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new Error(`${path}: ${(error as Error).message}`);
  }
}
