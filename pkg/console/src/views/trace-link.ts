/** The Grafana Explore URL showing a trace in the provisioned Tempo datasource (uid `tempo`). */
export function traceUrl(grafanaUrl: string, traceId: string): string {
  const panes = {
    t: {
      datasource: "tempo",
      queries: [{ refId: "A", datasource: { type: "tempo", uid: "tempo" }, queryType: "traceql", query: traceId }],
      range: { from: "now-24h", to: "now" },
    },
  };
  return `${grafanaUrl.replace(/\/+$/, "")}/explore?schemaVersion=1&panes=${encodeURIComponent(JSON.stringify(panes))}`;
}
