/** What the runner needs from each system under test. */
import type { ReceivedSpan } from "@tm/testkit";
import type { WatchedProcess } from "./proc.js";
import type { StorageSnapshot } from "./storage.js";

export interface SystemUnderTest {
  readonly name: "raw" | "raw-flow" | "bullmq" | "pipeline";
  /** Runs one task end to end; resolves when the system reports it done. */
  runOne(): Promise<void>;
  /** Every process whose CPU and memory count: the system's own, nats-server/redis-server and this driver. */
  processes(): WatchedProcess[];
  /** Single calls worth timing on their own (e.g. one gRPC round trip to the gateway), by name. */
  probes?: Record<string, () => Promise<unknown>>;
  /** What the system exported over OTLP so far (requests and bytes by path), when it exports to the benchmark. */
  exported?: () => Record<string, { requests: number; bytes: number }>;
  /** The spans it exported so far, when started to keep them (the pipeline with `keepSpans`, for --breakdown). */
  spans?: () => readonly ReceivedSpan[];
  /** What the system keeps in Redis now (used_memory, DBSIZE, keys and estimated bytes per key prefix; storage.ts),
   *  when it keeps its state there (the pipeline). With `settle`, first waits (at most a few seconds) until DBSIZE
   *  stops changing, so writes still landing after the last task finished are counted. */
  storage?(options?: { settle?: boolean }): Promise<StorageSnapshot>;
  stop(): Promise<void>;
}

/** A ~300-byte JSON body shaped like a pipeline task message, so every system moves the same bytes. */
export function taskBody(id: string): Record<string, unknown> {
  return {
    taskId: id,
    type: "echo",
    priority: "medium",
    payload: { text: "benchmark payload ".repeat(6).trim() },
    traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    createdAt: new Date().toISOString(),
    attempt: 1,
  };
}
