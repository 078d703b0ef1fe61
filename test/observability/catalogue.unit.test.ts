/**
 * The metric catalogue (what dashboards and alerts query) against what the code registers, both ways: every
 * catalogued tm_* metric is created by the code with the catalogue's kind, by the service the catalogue names;
 * every metric the code creates is either catalogued or listed in docs/OBSERVABILITY.md among the other metrics;
 * the docs' catalogue table names each metric's labels as the catalogue does.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { REPO_ROOT } from "@tm/testkit";
import { describe, expect, test } from "vitest";
import { METRIC_CATALOGUE, type MetricKind } from "../../pkg/configcheck/src/index.js";

/** Catalogue entries no code of ours registers: they come from an instrumentation or from Prometheus itself. */
const NOT_OURS = new Set(["http_server_request_duration", "up"]);

const KIND_OF: Record<string, MetricKind> = {
  createCounter: "counter",
  createHistogram: "histogram",
  createObservableGauge: "gauge",
  createGauge: "gauge",
  createUpDownCounter: "gauge",
  createObservableUpDownCounter: "gauge",
};
const CREATE =
  /\.\s*(create(?:Counter|Histogram|ObservableGauge|Gauge|UpDownCounter|ObservableUpDownCounter))\(\s*"([^"]+)"/g;

interface Registration {
  name: string;
  kind: MetricKind;
  file: string;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.ts$/.test(entry) && !/\.test\.ts$/.test(entry) ? [path] : [];
  });
}

function registrations(): Registration[] {
  const roots = ["services", "pkg"].flatMap((top) =>
    readdirSync(join(REPO_ROOT, top)).map((name) => join(REPO_ROOT, top, name, "src")),
  );
  return roots
    .filter((dir) => statSync(dir, { throwIfNoEntry: false })?.isDirectory())
    .flatMap(sourceFiles)
    .flatMap((file) =>
      [...readFileSync(file, "utf8").matchAll(CREATE)].map((m) => ({
        name: m[2] as string,
        kind: KIND_OF[m[1] as string] as MetricKind,
        file: relative(REPO_ROOT, file),
      })),
    );
}

describe("the metric catalogue and the code", () => {
  const registered = registrations();
  const docs = readFileSync(join(REPO_ROOT, "docs/OBSERVABILITY.md"), "utf8");

  test("the scan finds the code's metrics (guards the regex)", () => {
    expect(registered.length).toBeGreaterThan(15);
    expect(registered.map((r) => r.name)).toContain("tm_stage_processing_ms");
  });

  test.each(METRIC_CATALOGUE.filter((m) => !NOT_OURS.has(m.name)))(
    "$name is registered as a $kind by $services",
    (metric) => {
      const found = registered.filter((r) => r.name === metric.name);
      expect(found, `${metric.name} is in the catalogue but no code creates it`).not.toHaveLength(0);
      for (const r of found) expect(r.kind, `${r.file}`).toBe(metric.kind);
      const where = found.map((r) => r.file);
      const fromKit = where.some((f) => f.startsWith("pkg/kit/"));
      for (const service of metric.services) {
        expect(
          fromKit || where.some((f) => f.startsWith(`services/${service}/`)),
          `${metric.name}: catalogue says ${service}, code registers it in ${where.join(", ")}`,
        ).toBe(true);
      }
    },
  );

  test.each(METRIC_CATALOGUE)("docs/OBSERVABILITY.md's catalogue row of $name names exactly its labels", (metric) => {
    const row = docs.split("\n").find((line) => line.startsWith(`| \`${metric.name}\` `));
    expect(row, `no catalogue row for ${metric.name}`).toBeDefined();
    const documented = [...(row?.split("|")[3] ?? "").matchAll(/`([a-z_]+)`/g)].map((m) => m[1]);
    expect(documented.sort()).toEqual([...metric.labels].sort());
  });

  test("every metric the code creates is catalogued or documented as an extra", () => {
    const catalogued = new Set(METRIC_CATALOGUE.map((m) => m.name));
    const undocumented = registered
      .filter((r) => !catalogued.has(r.name) && !docs.includes(`\`${r.name}\``))
      .map((r) => `${r.name} (${r.file})`);
    expect(undocumented).toEqual([]);
  });
});
