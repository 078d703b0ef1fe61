/**
 * The RPC histogram follows the global meter provider: a call recorded before the service's telemetry registered one
 * (the metrics API then hands out a no-op meter, with no proxy to it) must not leave every later call unrecorded.
 * This file registers a provider of its own and takes it away again (metrics.disable) for the files after it.
 */
import { type Histogram, type Meter, type MeterProvider, metrics } from "@opentelemetry/api";
import { afterAll, expect, test } from "vitest";
import { TaskService } from "../src/index.js";
import { recordServerCall } from "../src/rpc-metrics.js";

afterAll(() => metrics.disable());

/** A provider that keeps what its histograms record. */
function recordingProvider(): { provider: MeterProvider; recorded: Array<Record<string, unknown>> } {
  const recorded: Array<Record<string, unknown>> = [];
  const histogram = {
    record: (_value: number, attributes?: Record<string, unknown>) => recorded.push(attributes ?? {}),
  };
  const meter = { createHistogram: () => histogram as unknown as Histogram } as unknown as Meter;
  return { provider: { getMeter: () => meter }, recorded };
}

test("a call recorded before a meter provider is registered does not pin the histogram to the no-op meter", () => {
  metrics.disable();
  const submit = TaskService.method.submitTask;
  recordServerCall(submit, 0, performance.now()); // no provider yet: nowhere to go
  const { provider, recorded } = recordingProvider();
  expect(metrics.setGlobalMeterProvider(provider)).toBe(true);
  recordServerCall(submit, 3, performance.now(), "web");
  expect(recorded).toEqual([
    { method: "taskmanager.v1.TaskService/SubmitTask", code: "INVALID_ARGUMENT", server: "web" },
  ]);
});
