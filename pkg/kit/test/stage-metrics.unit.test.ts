/**
 * withStageMetrics' retry counter: labelled by stage, subject, and the task's type and priority (bounded: "other"
 * for anything not in the contract), every expected series at zero from the start, one count per NAKed delivery
 * whichever path NAKed it, and the service's own hooks still called.
 */
import type { Attributes } from "@opentelemetry/api";
import { MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import type { ConsumerHooks, DeliveryContext, MessageFor } from "@tm/flow";
import { describe, expect, test, vi } from "vitest";
import { ConsumerMetrics, withStageMetrics } from "../src/stage-metrics.js";
import { expectedTaskLabels, taskLabels } from "../src/task-labels.js";

class TestReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

function setup() {
  const reader = new TestReader();
  const provider = new MeterProvider({ readers: [reader] });
  const metrics = new ConsumerMetrics(provider.getMeter("test"));
  /** The retry counter's points as "labels → value". */
  async function retried(): Promise<Array<{ attributes: Attributes; value: number }>> {
    const { resourceMetrics } = await reader.collect();
    const metric = resourceMetrics.scopeMetrics
      .flatMap((s) => s.metrics)
      .find((m) => m.descriptor.name === "tm_tasks_retried_total");
    return (metric?.dataPoints ?? []).map((p) => ({ attributes: p.attributes, value: p.value as number }));
  }
  return { metrics, retried };
}

const ctx = (subject: DeliveryContext["subject"]): DeliveryContext =>
  ({ subject, attempt: 1, taskId: undefined, receivedAt: Date.now() }) as unknown as DeliveryContext;

const task = (type: string, priority: string) =>
  ({ taskId: crypto.randomUUID(), type, priority, payload: {} }) as unknown as MessageFor<"tasks.worker.low">;

describe("taskLabels", () => {
  test("a known type and priority are kept; anything else is other", () => {
    expect(taskLabels({ type: "flaky", priority: "low" })).toEqual({ type: "flaky", priority: "low" });
    expect(taskLabels({ type: "not-a-type", priority: "urgent" })).toEqual({ type: "other", priority: "other" });
    expect(taskLabels({ state: "RUNNING" })).toEqual({ type: "other", priority: "other" });
    expect(taskLabels(null)).toEqual({ type: "other", priority: "other" });
  });

  test("expected series: every type at the worker subject's own priority; every pair on other task subjects; other on events", () => {
    const low = expectedTaskLabels("tasks.worker.low");
    expect(low).toHaveLength(5);
    expect(new Set(low.map((l) => l.priority))).toEqual(new Set(["low"]));
    expect(expectedTaskLabels("tasks.ingest")).toHaveLength(15);
    expect(expectedTaskLabels("events.status")).toEqual([{ type: "other", priority: "other" }]);
  });
});

describe("withStageMetrics: tm_tasks_retried_total", () => {
  test("every expected series starts at zero, with the stage and subject labels", async () => {
    const { metrics, retried } = setup();
    withStageMetrics(metrics, "worker", "tasks.worker.low");
    withStageMetrics(metrics, "notifier", "events.status");
    const points = await retried();
    expect(points).toHaveLength(6);
    expect(points.every((p) => p.value === 0)).toBe(true);
    expect(points).toContainEqual({
      attributes: { stage: "worker", subject: "tasks.worker.low", type: "flaky", priority: "low" },
      value: 0,
    });
    expect(points).toContainEqual({
      attributes: { stage: "notifier", subject: "events.status", type: "other", priority: "other" },
      value: 0,
    });
  });

  test("a retry is counted under the message's type and priority, and the service's onRetry still runs", async () => {
    const { metrics, retried } = setup();
    const onRetry = vi.fn(async () => {});
    const onOutcome = vi.fn();
    const hooks = withStageMetrics(metrics, "worker", "tasks.worker.low", { onRetry, onOutcome });
    for (const message of [task("flaky", "low"), task("flaky", "low"), task("someday", "low")]) {
      const delivery = ctx("tasks.worker.low");
      await hooks.onRetry?.(message, new Error("boom"), delivery, 100);
      hooks.onOutcome?.("retried", delivery, new Error("boom"));
    }
    expect(onRetry).toHaveBeenCalledTimes(3);
    expect(onOutcome).toHaveBeenCalledTimes(3);
    const points = await retried();
    const value = (type: string, priority: string) =>
      points.find((p) => p.attributes.type === type && p.attributes.priority === priority)?.value;
    expect(value("flaky", "low")).toBe(2);
    expect(value("echo", "low")).toBe(0);
    expect(value("other", "low")).toBe(1); // an unknown type at a known priority
    expect(value("other", "other")).toBe(undefined);
  });

  test("a failing service onRetry still leaves the retry counted", async () => {
    const { metrics, retried } = setup();
    const hooks = withStageMetrics(metrics, "ingest", "tasks.ingest", {
      onRetry: async () => {
        throw new Error("status publish failed");
      },
    });
    const delivery = ctx("tasks.ingest");
    await expect(hooks.onRetry?.(task("echo", "high") as never, new Error("x"), delivery, 0)).rejects.toThrow();
    hooks.onOutcome?.("retried", delivery, new Error("x"));
    const points = await retried();
    expect(points.find((p) => p.attributes.type === "echo" && p.attributes.priority === "high")?.value).toBe(1);
  });

  test("a NAK after dead-lettering failed (onExhausted, then retried) keeps the labels; no hook at all: other", async () => {
    const { metrics, retried } = setup();
    const onExhausted = vi.fn(async () => {});
    const hooks: ConsumerHooks<"tasks.worker.high"> = withStageMetrics(metrics, "worker", "tasks.worker.high", {
      onExhausted,
    });
    const exhausted = ctx("tasks.worker.high");
    await hooks.onExhausted?.(task("fail", "high") as never, new Error("x"), exhausted);
    hooks.onOutcome?.("retried", exhausted, new Error("x"));
    hooks.onOutcome?.("retried", ctx("tasks.worker.high"), new Error("x"));
    expect(onExhausted).toHaveBeenCalledTimes(1);
    const points = await retried();
    expect(points.find((p) => p.attributes.type === "fail")?.value).toBe(1);
    expect(points.find((p) => p.attributes.type === "other" && p.attributes.priority === "other")?.value).toBe(1);
  });
});
