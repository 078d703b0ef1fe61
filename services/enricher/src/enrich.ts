/**
 * The enrichment rules: pure functions of a task, so they are tested without a server and a worker can trust the
 * numbers (they depend on the task alone, never on the enricher's state).
 */
import { createHash } from "node:crypto";
import type { Enrichment, TaskMessage } from "@tm/flow";

/** Version of these rules (not of the package): bump it when a derived field changes meaning. */
export const ENRICHER_VERSION = "1.0.0";

/** payloadKeys is a hint for dashboards and logs, not a copy of the payload: keep it small. */
export const MAX_PAYLOAD_KEYS = 50;

export type EnrichableTask = Pick<TaskMessage, "type" | "payload" | "createdAt">;

export interface TaskEnrichment extends Enrichment {
  /** Rough work units, for capacity planning: sleep → ms, checksum → rounds × data length, anything else → 1. */
  estimatedCost: number;
  /** Sorted top-level payload keys (at most MAX_PAYLOAD_KEYS). */
  payloadKeys: string[];
  enricherVersion: string;
}

export function enrich(task: EnrichableTask, now: Date = new Date()): TaskEnrichment {
  const json = JSON.stringify(task.payload);
  const keys = Object.keys(task.payload);
  return {
    payloadBytes: Buffer.byteLength(json, "utf8"),
    payloadSha256: createHash("sha256").update(json, "utf8").digest("hex"),
    fieldCount: keys.length,
    receivedAt: task.createdAt,
    enrichedAt: now.toISOString(),
    estimatedCost: estimateCost(task),
    payloadKeys: keys.sort().slice(0, MAX_PAYLOAD_KEYS),
    enricherVersion: ENRICHER_VERSION,
  };
}

/** Payload fields of the wrong kind count as 0 work rather than failing: the worker, not the enricher, owns payload
 *  validation for each type. */
export function estimateCost(task: Pick<TaskMessage, "type" | "payload">): number {
  const { payload } = task;
  switch (task.type) {
    case "sleep":
      return nonNegative(payload.ms);
    case "checksum": {
      const length = typeof payload.data === "string" ? payload.data.length : 0;
      return nonNegative(payload.rounds) * length;
    }
    default:
      return 1;
  }
}

function nonNegative(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : 0;
}
