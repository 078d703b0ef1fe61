/**
 * Static checks of the observability stack's configs (configs/*): they parse, they refer to each other correctly
 * (datasource uids, pipeline components, rule files), they query only catalogued metrics and labels, and listeners
 * are bound to 0.0.0.0 so other containers can reach them. promtool validates the Prometheus config and rules when
 * it is available (PROMTOOL=/path/to/promtool or on PATH); there are no Grafana/Tempo/Loki binaries to run here.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  findMetric,
  labelNamesIn,
  loadJson,
  loadYaml,
  METRIC_CATALOGUE,
  metricNamesIn,
} from "../pkg/configcheck/src/index.js";
import { taskLogQuery } from "../pkg/console/src/views/trace-link.js";
import { parseYamlDocuments, readYaml } from "../pkg/deploycheck/src/yaml.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const configs = join(root, "configs");

// biome-ignore lint/suspicious/noExplicitAny: parsed configs are untyped trees; each test asserts the shape it reads.
type Tree = any;
const yaml = (path: string): Tree => loadYaml(join(configs, path));

function filesUnder(dir: string, ...extensions: string[]): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((name) => extensions.some((ext) => name.endsWith(ext)))
    .map((name) => join(dir, name))
    .sort();
}

const dashboards: Array<{ file: string; json: Tree }> = filesUnder(join(configs, "grafana/dashboards"), ".json").map(
  (file) => ({ file: relative(root, file), json: loadJson(file) }),
);

/** Every object in a tree, depth first (dashboard panels, targets and datasource refs are nested at any depth). */
function* objectsIn(tree: Tree): Generator<Record<string, Tree>> {
  if (Array.isArray(tree)) for (const item of tree) yield* objectsIn(item);
  else if (tree && typeof tree === "object") {
    yield tree;
    for (const value of Object.values(tree)) yield* objectsIn(value);
  }
}

interface Query {
  where: string;
  expr: string;
}

const prometheusQueries: Query[] = [
  ...dashboards.flatMap(({ file, json }) =>
    [...objectsIn(json)]
      .filter((o) => typeof o.expr === "string" && o.datasource?.uid === "prometheus")
      .map((o) => ({ where: `${file} ${o.refId}`, expr: o.expr as string })),
  ),
  ...(yaml("prometheus/alerts.yml").groups as Tree[]).flatMap((group) =>
    (group.rules as Tree[]).map((rule) => ({ where: `alerts.yml ${rule.alert}`, expr: rule.expr as string })),
  ),
];

/** Labels every scraped series has besides its own: from the scrape config, and `le` on histogram buckets. */
const TARGET_LABELS = ["job", "instance", "service"];

describe("every config file parses", () => {
  it.each(filesUnder(configs, ".yaml", ".yml").map((f) => relative(root, f)))("%s", (file) => {
    expect(loadYaml(join(root, file))).toBeTypeOf("object");
  });

  it("finds the dashboards", () => {
    expect(dashboards.map((d) => d.json.uid).sort()).toEqual(["tm-overview", "tm-task"]);
  });
});

describe("queries use only the metric catalogue", () => {
  it("collects the queries of both dashboards and the alert rules", () => {
    expect(prometheusQueries.length).toBeGreaterThan(20);
  });

  it.each(prometheusQueries)("$where", ({ expr }) => {
    const series = metricNamesIn(expr);
    expect(series.length, `no metric found in ${expr}`).toBeGreaterThan(0);
    const metrics = series.map((name) => {
      const metric = findMetric(name);
      expect(metric, `${name} is not in the catalogue (pkg/configcheck/src/catalogue.ts)`).toBeDefined();
      return metric;
    });
    const known = new Set([...TARGET_LABELS, ...metrics.flatMap((m) => m?.labels ?? [])]);
    if (metrics.some((m) => m?.kind === "histogram")) known.add("le");
    for (const label of labelNamesIn(expr)) expect(known, `label "${label}" in ${expr}`).toContain(label);
  });

  it("the catalogue scanner reads histogram series and ignores label values and functions", () => {
    const expr = 'histogram_quantile(0.95, sum by (le, type) (rate(tm_task_duration_ms_bucket{type="up"}[5m]))) or up';
    expect(metricNamesIn(expr)).toEqual(["tm_task_duration_ms_bucket", "up"]);
    expect(findMetric("tm_task_duration_ms_bucket")?.name).toBe("tm_task_duration_ms");
    expect(findMetric("tm_tasks_processed_total_count")).toBeUndefined();
    expect(labelNamesIn(expr)).toEqual(["le", "type"]);
  });

  it("docs/OBSERVABILITY.md lists every catalogued metric", () => {
    const doc = readFileSync(join(root, "docs/OBSERVABILITY.md"), "utf8");
    for (const { name } of METRIC_CATALOGUE) expect(doc, name).toContain(`\`${name}\``);
  });
});

describe("grafana", () => {
  const datasources: Tree[] = yaml("grafana/provisioning/datasources/datasources.yaml").datasources;
  const byUid = new Map(datasources.map((d) => [d.uid, d]));

  it("provisions prometheus, tempo and loki under fixed uids", () => {
    expect([...byUid.keys()].sort()).toEqual(["loki", "prometheus", "tempo"]);
    expect(byUid.get("prometheus").url).toBe("http://prometheus:9090");
    expect(byUid.get("tempo").url).toBe("http://tempo:3200");
    expect(byUid.get("loki").url).toBe("http://loki:3100");
  });

  it.each(dashboards)("$file refers only to provisioned datasource uids", ({ json }) => {
    const uids = [...objectsIn(json)].flatMap((o) => (o.datasource?.uid ? [o.datasource.uid as string] : []));
    expect(uids.length).toBeGreaterThan(0);
    for (const uid of uids) expect(byUid.has(uid), `unknown datasource uid ${uid}`).toBe(true);
  });

  it("links traces to logs and metrics, and logs to traces", () => {
    const tempo = byUid.get("tempo").jsonData;
    expect(tempo.tracesToLogsV2.datasourceUid).toBe("loki");
    // `$$` is Grafana provisioning's escape for a literal `$` (it would otherwise expand an env variable).
    expect(tempo.tracesToLogsV2.query).toContain("$${__trace.traceId}");
    expect(tempo.serviceMap.datasourceUid).toBe("prometheus");
    expect(tempo.tracesToMetrics.datasourceUid).toBe("prometheus");

    const derived: Tree[] = byUid.get("loki").jsonData.derivedFields;
    expect(derived.every((d) => d.datasourceUid === "tempo")).toBe(true);
    const fromLine = derived.find((d) => d.matcherType !== "label");
    const line = JSON.stringify({
      level: "info",
      time: "2026-01-01T00:00:00.000Z",
      service: "worker",
      msg: "task succeeded",
      trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
      span_id: "00f067aa0ba902b7",
      taskId: "t-1",
    });
    expect(new RegExp(fromLine.matcherRegex).exec(line)?.[1]).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
  });

  it("loads the dashboards directory", () => {
    const [provider] = yaml("grafana/provisioning/dashboards/dashboards.yaml").providers;
    expect(provider.type).toBe("file");
    expect(provider.options.path).toBe("/var/lib/grafana/dashboards");
  });

  it("the task drill-down has a task_id textbox, a Loki logs panel and a Tempo search panel", () => {
    const task = dashboards.find((d) => d.json.uid === "tm-task")?.json;
    const variable = task.templating.list.find((v: Tree) => v.name === "task_id");
    expect(variable.type).toBe("textbox");
    const exprs = task.panels.flatMap((p: Tree) => (p.targets ?? []).map((t: Tree) => t.expr ?? t.query));
    expect(exprs).toContain('{service=~".+"} |= "$task_id"');
    expect(exprs).toContain('{ span.task.id = "$task_id" }');
  });
});

describe("otel collector", () => {
  const config = yaml("otel-collector/config.yaml");
  // Component types of the otelcol-contrib distribution this config may use (the name before any "/"). No `loki`
  // exporter: deprecated in 2024 and removed from contrib; Loki 3.x takes OTLP itself (otlphttp to /otlp).
  const CONTRIB_TYPES = {
    receivers: ["otlp"],
    processors: ["batch", "memory_limiter"],
    exporters: ["otlp", "otlp_grpc", "otlphttp", "otlp_http", "prometheus", "prometheusremotewrite", "debug"],
    extensions: ["health_check"],
  } as const;
  const pipelines = config.service.pipelines as Record<string, Tree>;
  /** The exporters of one pipeline, with their config. */
  const exportersOf = (pipeline: string): Array<{ id: string; type: string; exporter: Tree }> =>
    (pipelines[pipeline]?.exporters ?? []).map((id: string) => ({
      id,
      type: id.split("/")[0],
      exporter: config.exporters[id],
    }));
  /** host and port of a listen address or an exporter endpoint (`tempo:4317` or `http://loki:3100/otlp`). */
  const addressOf = (endpoint: string) => new URL(endpoint.includes("://") ? endpoint : `tcp://${endpoint}`);

  // Where the collector's exporters may send: services of docker-compose.yml and, for the same config copied to
  // k8s/configs, the Services in k8s/observability (same namespace, so the same short names resolve).
  const compose = readYaml<{ services: Record<string, { image?: string }> }>(join(root, "docker-compose.yml"));
  const composeServices = Object.keys(compose.services);
  const k8sServices = filesUnder(join(root, "k8s/observability"), ".yaml", ".yml")
    .flatMap((file) => parseYamlDocuments<Tree>(readFileSync(file, "utf8")))
    .filter((doc) => doc.kind === "Service")
    .map((doc) => doc.metadata.name as string);

  it("binds every receiver and listening exporter to 0.0.0.0 (OTLP on 4317 and 4318)", () => {
    expect(config.receivers.otlp.protocols.grpc.endpoint).toBe("0.0.0.0:4317");
    expect(config.receivers.otlp.protocols.http.endpoint).toBe("0.0.0.0:4318");
    const listeners = [
      ...Object.entries(config.receivers as Record<string, Tree>).flatMap(([id, receiver]) =>
        Object.entries((receiver.protocols ?? { self: receiver }) as Record<string, Tree>).map(
          ([protocol, settings]) => [`receivers ${id} ${protocol}`, settings.endpoint],
        ),
      ),
      ["exporters prometheus", config.exporters.prometheus.endpoint],
      ["extensions health_check", config.extensions.health_check.endpoint],
    ];
    for (const [where, endpoint] of listeners) {
      expect(endpoint, where).toEqual(expect.any(String));
      expect(addressOf(endpoint).hostname, where).toBe("0.0.0.0");
    }
  });

  it("uses only contrib components, and pipelines only defined ones", () => {
    for (const [kind, types] of Object.entries(CONTRIB_TYPES)) {
      for (const id of Object.keys(config[kind] ?? {})) expect(types, `${kind} ${id}`).toContain(id.split("/")[0]);
    }
    for (const id of config.service.extensions) expect(config.extensions).toHaveProperty([id]);
    expect(Object.keys(pipelines).sort()).toEqual(["logs", "metrics", "traces"]);
    for (const [name, pipeline] of Object.entries(pipelines)) {
      for (const kind of ["receivers", "processors", "exporters"]) {
        for (const id of pipeline[kind]) expect(config[kind], `${name} ${kind} ${id}`).toHaveProperty([id]);
      }
      expect(pipeline.receivers, `${name}: receives OTLP`).toEqual(["otlp"]);
      expect(pipeline.processors[0], `${name}: memory_limiter must run first`).toBe("memory_limiter");
      expect(pipeline.processors, `${name}: batches`).toContain("batch");
    }
  });

  it("pipelines: traces -> tempo (OTLP gRPC), metrics -> prometheus (scraped), logs -> loki (OTLP HTTP /otlp)", () => {
    const [traces] = exportersOf("traces");
    expect(exportersOf("traces")).toHaveLength(1);
    expect(["otlp", "otlp_grpc"]).toContain(traces?.type);
    expect(traces?.exporter).toMatchObject({ endpoint: "tempo:4317", tls: { insecure: true } });

    // Prometheus pulls: the exporter listens, and prometheus.yml scrapes otel-collector on that port (checked in
    // the prometheus block below: target otel-collector:8889).
    expect(exportersOf("metrics").map((e) => e.type)).toEqual(["prometheus"]);
    expect(config.exporters.prometheus.endpoint).toBe("0.0.0.0:8889");
    const scrapeTargets = (yaml("prometheus/prometheus.yml").scrape_configs as Tree[]).flatMap((job) =>
      ((job.static_configs ?? []) as Tree[]).flatMap((sc) => sc.targets as string[]),
    );
    expect(scrapeTargets).toContain(`otel-collector:${addressOf(config.exporters.prometheus.endpoint).port}`);

    // Loki's native OTLP ingestion: otlphttp appends /v1/logs to `endpoint`, so the requests go to /otlp/v1/logs.
    const [logs] = exportersOf("logs");
    expect(exportersOf("logs")).toHaveLength(1);
    expect(["otlphttp", "otlp_http"]).toContain(logs?.type);
    expect(logs?.exporter.logs_endpoint, "set endpoint (base URL), not logs_endpoint").toBeUndefined();
    const loki = addressOf(logs?.exporter.endpoint);
    expect([loki.protocol, loki.hostname, loki.port, loki.pathname]).toEqual(["http:", "loki", "3100", "/otlp"]);
    // Loki has the OTLP endpoint from 3.0 on, and only with structured metadata (schema v13 on tsdb: checked in
    // the loki block below).
    expect(compose.services.loki?.image).toMatch(/^grafana\/loki:3\./);
  });

  it("every pushing exporter's host is a compose service and a k8s Service", () => {
    const pushing = Object.entries(config.exporters as Record<string, Tree>).filter(
      ([id]) => id.split("/")[0] !== "prometheus",
    );
    expect(pushing.length).toBeGreaterThanOrEqual(2);
    for (const [id, exporter] of pushing) {
      const host = addressOf(exporter.endpoint).hostname;
      expect(composeServices, `exporters ${id}: ${host} in docker-compose.yml`).toContain(host);
      expect(k8sServices, `exporters ${id}: ${host} in k8s/observability`).toContain(host);
    }
    expect(composeServices).toContain("otel-collector");
    expect(k8sServices).toContain("otel-collector");
  });
});

describe("tempo, loki, promtail", () => {
  it("tempo receives OTLP on 0.0.0.0 and stores blocks locally", () => {
    const tempo = yaml("tempo/tempo.yaml");
    expect(tempo.distributor.receivers.otlp.protocols.grpc.endpoint).toBe("0.0.0.0:4317");
    expect(tempo.distributor.receivers.otlp.protocols.http.endpoint).toBe("0.0.0.0:4318");
    expect(tempo.server.http_listen_port).toBe(3200);
    expect(tempo.storage.trace.backend).toBe("local");
  });

  it("loki listens on 0.0.0.0:3100 with a tsdb v13 schema and structured metadata", () => {
    const loki = yaml("loki/loki.yaml");
    expect(loki.server).toMatchObject({ http_listen_address: "0.0.0.0", http_listen_port: 3100 });
    expect(loki.schema_config.configs.at(-1)).toMatchObject({ store: "tsdb", schema: "v13" });
    expect(loki.limits_config.allow_structured_metadata).toBe(true);
  });

  it("promtail labels lines by compose service and keeps per-task ids out of the labels", () => {
    const promtail = yaml("promtail/promtail.yaml");
    expect(promtail.clients[0].url).toBe("http://loki:3100/loki/api/v1/push");
    const [job] = promtail.scrape_configs;
    expect(job.docker_sd_configs[0].host).toBe("unix:///var/run/docker.sock");
    expect(job.relabel_configs).toContainEqual({
      source_labels: ["__meta_docker_container_label_com_docker_compose_service"],
      target_label: "service",
    });
    const stage = (name: string) => job.pipeline_stages.find((s: Tree) => name in s)?.[name];
    expect(stage("json").expressions).toMatchObject({ level: "level", trace_id: "trace_id", task_id: "taskId" });
    expect(Object.keys(stage("labels"))).toEqual(["level"]);
    expect(Object.keys(stage("structured_metadata"))).toEqual(expect.arrayContaining(["trace_id", "task_id"]));
  });

  it("the console's View logs query asks for what promtail provides, in compose and in k8s", () => {
    const query = taskLogQuery("3f1c2a9e-0000-4000-8000-000000000001");
    // {<label>=~".+"} | <metadata>="<id>"
    const [, label, metadata] = /^\{(\w+)=~"\.\+"\} \| (\w+)="3f1c2a9e-0000-4000-8000-000000000001"$/.exec(query) ?? [];
    expect([label, metadata]).toEqual(["service", "task_id"]);
    for (const [where, config] of [
      ["compose", yaml("promtail/promtail.yaml")],
      ["k8s", loadYaml(join(root, "k8s/observability/promtail-kubernetes.yaml"))],
    ] as const) {
      const [job] = config.scrape_configs;
      expect(
        job.relabel_configs.map((r: Tree) => r.target_label),
        where,
      ).toContain(label);
      const stage = (name: string) => job.pipeline_stages.find((s: Tree) => name in s)?.[name];
      expect(Object.keys(stage("structured_metadata")), where).toContain(metadata);
      expect(stage("json").expressions[metadata as string], where).toBe("taskId");
    }
    // A quote in the id cannot end the string early.
    expect(taskLogQuery('a"b')).toBe('{service=~".+"} | task_id="a\\"b"');
  });
});

describe("prometheus", () => {
  const config = yaml("prometheus/prometheus.yml");
  const SERVICES = {
    gateway: 8080,
    enricher: 8081,
    "result-store": 8082,
    ingest: 8083,
    scheduler: 8084,
    worker: 8085,
    notifier: 8086,
    audit: 8087,
    deadletter: 8088,
  };

  it("scrapes every replica of every service (DNS discovery, labelled by service), the collector and itself", () => {
    const jobs = config.scrape_configs as Tree[];
    const services = jobs.find((job) => job.job_name === "services");
    // Each compose service name asked as an A record on its ops port: every replica's address is a target.
    const discovered = (services.dns_sd_configs as Tree[]).flatMap((sd) =>
      sd.names.map((name: string) => [name, sd.type, sd.port]),
    );
    expect(discovered.sort()).toEqual(
      Object.entries(SERVICES)
        .map(([name, port]) => [name, "A", port])
        .sort(),
    );
    expect(services.relabel_configs).toContainEqual({ source_labels: ["__meta_dns_name"], target_label: "service" });
    const targets = jobs.flatMap((job) =>
      ((job.static_configs ?? []) as Tree[]).flatMap((sc) => sc.targets.map((t: string) => [t, sc.labels?.service])),
    );
    expect(targets).toContainEqual(["otel-collector:8889", "otel-collector"]);
    expect(targets).toContainEqual(["localhost:9090", "prometheus"]);
    expect(config.rule_files).toEqual(["alerts.yml"]);
  });

  it("keeps the exemplars Tempo sends (compose and k8s), which the Grafana datasource links to traces", () => {
    const remoteWrite = yaml("tempo/tempo.yaml").metrics_generator.storage.remote_write as Tree[];
    expect(remoteWrite.map((target) => target.send_exemplars)).toEqual([true]);
    const compose = readYaml<Tree>(join(root, "docker-compose.yml"));
    expect(compose.services.prometheus.command).toContain("--enable-feature=exemplar-storage");
    const k8sPrometheus = parseYamlDocuments<Tree>(
      readFileSync(join(root, "k8s/observability/prometheus.yaml"), "utf8"),
    )
      .filter((doc) => doc?.kind === "Deployment" || doc?.kind === "StatefulSet")
      .flatMap((doc) => doc.spec.template.spec.containers as Tree[])
      .find((container) => container.name === "prometheus");
    expect(k8sPrometheus?.args).toContain("--enable-feature=exemplar-storage");
  });

  it("has the alerts operators need", () => {
    const names = (yaml("prometheus/alerts.yml").groups as Tree[]).flatMap((g) => g.rules.map((r: Tree) => r.alert));
    expect(names).toEqual(
      expect.arrayContaining([
        "ServiceDown",
        "ServiceMissing",
        "DeadLettersIncreasing",
        "ConsumerLagHigh",
        "NoTasksProcessed",
      ]),
    );
  });

  it("ServiceMissing names every service Prometheus scrapes (a service with no replica has no `up` to be 0)", () => {
    const rules = (yaml("prometheus/alerts.yml").groups as Tree[]).flatMap((g) => g.rules as Tree[]);
    const missing = rules.find((r) => r.alert === "ServiceMissing");
    const named = [...String(missing.expr).matchAll(/absent\(up\{job="services", service="([a-z-]+)"\}\)/g)].map(
      (m) => m[1],
    );
    expect(named.sort()).toEqual(Object.keys(SERVICES).sort());
  });

  const promtool = process.env.PROMTOOL ?? "promtool";
  const available = spawnSync(promtool, ["--version"]).status === 0;
  if (!available) {
    console.warn(
      `promtool not found (${promtool}): skipping promtool checks. Get it with ` +
        "`apt-get download prometheus && dpkg-deb -x prometheus_*.deb /tmp/prom` and PROMTOOL=/tmp/prom/usr/bin/promtool.",
    );
  }

  it.skipIf(!available)("promtool check config accepts prometheus.yml (and its rule file)", () => {
    const run = spawnSync(promtool, ["check", "config", join(configs, "prometheus/prometheus.yml")], {
      encoding: "utf8",
    });
    expect(run.status, run.stdout + run.stderr).toBe(0);
  });

  it.skipIf(!available)("promtool check rules accepts alerts.yml", () => {
    const run = spawnSync(promtool, ["check", "rules", join(configs, "prometheus/alerts.yml")], { encoding: "utf8" });
    expect(run.status, run.stdout + run.stderr).toBe(0);
  });

  it.skipIf(!available)("promtool test rules: the alerts fire when they should", () => {
    const run = spawnSync(promtool, ["test", "rules", join(configs, "prometheus/alerts.test.yml")], {
      encoding: "utf8",
    });
    expect(run.status, run.stdout + run.stderr).toBe(0);
  });
});
