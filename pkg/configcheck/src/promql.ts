/**
 * Finds the metric names an expression (PromQL) or alert refers to. Deliberately a scanner, not a parser: it picks
 * every identifier in our namespaces (tm_, http_server_, rpc_server_) and `up`, which is all the configs may use.
 */
const METRIC_TOKEN =
  /(?<![A-Za-z0-9_:$"])(tm_[a-z0-9_]+|http_server_[a-z0-9_]+|rpc_server_[a-z0-9_]+|up)(?![A-Za-z0-9_(])/g;

/** Series names as written (e.g. tm_task_duration_ms_bucket), in order of first use, without duplicates. */
export function metricNamesIn(expr: string): string[] {
  // Label matchers and strings may contain words like "up"; drop quoted text and {...} contents first.
  const code = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\{[^}]*\}/g, "{}");
  return [...new Set(Array.from(code.matchAll(METRIC_TOKEN), (m) => m[1] as string))];
}

const GROUPING = /\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g;
const MATCHERS = /\{([^}]*)\}/g;
const MATCHER_LABEL = /([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)/g;

/** Label names an expression groups by, joins on or matches on (e.g. `sum by (le, type) (x{outcome="failed"})`). */
export function labelNamesIn(expr: string): string[] {
  const code = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const names: string[] = [];
  for (const [, list] of code.matchAll(GROUPING)) {
    for (const name of (list ?? "").split(",")) if (name.trim()) names.push(name.trim());
  }
  for (const [, body] of code.matchAll(MATCHERS)) {
    for (const [, name] of (body ?? "").matchAll(MATCHER_LABEL)) names.push(name as string);
  }
  return [...new Set(names)];
}
