/** Grafana Explore URLs for a task: its trace (Tempo) and every service's log lines about it (Loki). */

/** The Grafana Explore URL showing a trace in the provisioned Tempo datasource (uid `tempo`). */
export function traceUrl(grafanaUrl: string, traceId: string): string {
  const panes = {
    t: {
      datasource: "tempo",
      queries: [{ refId: "A", datasource: { type: "tempo", uid: "tempo" }, queryType: "traceql", query: traceId }],
      range: { from: "now-24h", to: "now" },
    },
  };
  return exploreUrl(grafanaUrl, panes);
}

/** The LogQL that finds a task's lines in every service's log: promtail labels each stream with its `service` and
 *  keeps a line's `taskId` as the structured metadata `task_id` (configs/promtail, k8s/observability). */
export function taskLogQuery(taskId: string): string {
  return `{service=~".+"} | task_id="${taskId.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/** The Grafana Explore URL showing every service's log lines about a task in the provisioned Loki datasource (uid
 *  `loki`), from a minute before it was created: what its handler logged and what each stage said about it. */
export function taskLogsUrl(grafanaUrl: string, taskId: string, createdAtMs: number | undefined): string {
  const from = createdAtMs === undefined ? "now-24h" : String(createdAtMs - 60_000);
  const panes = {
    l: {
      datasource: "loki",
      queries: [{ refId: "A", datasource: { type: "loki", uid: "loki" }, expr: taskLogQuery(taskId) }],
      range: { from, to: "now" },
    },
  };
  return exploreUrl(grafanaUrl, panes);
}

function exploreUrl(grafanaUrl: string, panes: object): string {
  return `${grafanaUrl.replace(/\/+$/, "")}/explore?schemaVersion=1&panes=${encodeURIComponent(JSON.stringify(panes))}`;
}
