import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { type ReceivedSpan, spansOfTraceExport } from "@tm/testkit";
import { describe, expect, test } from "vitest";
import { latencyBreakdown } from "../bench/src/breakdown-stats.js";
import { startOtlpSink } from "../bench/src/otlp-sink.js";

function span(traceId: string, service: string, name: string, startMs: number, endMs: number, taskId?: string) {
  return {
    service,
    scope: "",
    traceId,
    spanId: `${service}-${name}-${startMs}`,
    parentSpanId: "",
    name,
    kind: 1,
    attributes: taskId ? { "task.id": taskId } : {},
    links: [],
    startMs,
    endMs,
  } satisfies ReceivedSpan;
}

/** One task's trace starting at `t0`: SubmitTask, then two status updates of the notifier, `slow` ms apart. */
const trace = (id: string, t0: number, slow: number) => [
  span(id, "gateway", "SubmitTask", t0, t0 + 3, id),
  span(id, "notifier", "process", t0 + 2, t0 + 4, id),
  span(id, "ingest", "process", t0 + 5, t0 + 5 + slow, id),
  span(id, "notifier", "process", t0 + 6 + slow, t0 + 8 + slow, id),
];

describe("latencyBreakdown", () => {
  test("rows in order, by service, name and occurrence, with medians from each trace's first span", () => {
    const spans = [...trace("a", 1000, 1), ...trace("b", 2000, 2), ...trace("c", 3000, 9)];
    const { traces, totalMs, rows } = latencyBreakdown(spans);
    expect(traces).toBe(3);
    expect(totalMs).toBe(10); // the traces last 9, 10 and 17 ms
    expect(rows).toEqual([
      { span: "gateway SubmitTask", traces: 3, startMs: 0, endMs: 3, durationMs: 3 },
      { span: "notifier process", traces: 3, startMs: 2, endMs: 4, durationMs: 2 },
      { span: "ingest process", traces: 3, startMs: 5, endMs: 7, durationMs: 2 },
      { span: "notifier process #2", traces: 3, startMs: 8, endMs: 10, durationMs: 2 },
    ]);
  });

  test("leaves out traces of no task, traces that started before sinceMs, and spans in under half of the traces", () => {
    const spans = [
      ...trace("warm-up", 500, 1),
      ...trace("a", 1000, 1),
      ...trace("b", 2000, 1),
      span("b", "deadletter", "process", 2009, 2010, "b"), // in one trace of two: kept (half)
      ...trace("c", 3000, 1),
      span("c", "enricher", "rare", 3001, 3002), // in one trace of three: left out
      span("health", "gateway", "Check", 1500, 1501), // no task.id: not a task's trace
    ];
    const all = latencyBreakdown(spans, { sinceMs: 1000 });
    expect(all.traces).toBe(3);
    expect(all.rows.map((r) => r.span)).not.toContain("enricher rare");
    expect(latencyBreakdown(spans, { sinceMs: 2000 }).rows.map((r) => r.span)).toContain("deadletter process");
    expect(latencyBreakdown([]).traces).toBe(0);
  });
});

describe("spansOfTraceExport", () => {
  const NANOS_START = 1_764_000_000_123_456_789n;

  test("reads an OTLP protobuf export: service, ids, name, attributes, and times below the millisecond", () => {
    // KeyValue { key = 1; AnyValue value = 2 { string_value = 1 } }, its field tag written by the caller.
    const keyValue = (w: BinaryWriter, key: string, value: string) =>
      w.fork().uint32(10).string(key).uint32(18).fork().uint32(10).string(value).join().join();
    const w = new BinaryWriter();
    w.uint32(10).fork(); // resource_spans
    w.uint32(10).fork(); // resource
    w.uint32(10);
    keyValue(w, "service.name", "worker");
    w.join();
    w.uint32(18).fork(); // scope_spans
    w.uint32(10).fork().uint32(10).string("@tm/flow").join(); // scope.name
    w.uint32(18).fork(); // span
    w.uint32(10).bytes(new Uint8Array(16).fill(0xab));
    w.uint32(18).bytes(new Uint8Array(8).fill(0xcd));
    w.uint32(42).string("tasks.worker.medium process");
    w.uint32(48).int32(5);
    w.uint32(57).fixed64(NANOS_START);
    w.uint32(65).fixed64(NANOS_START + 2_500_000n);
    w.uint32(74);
    keyValue(w, "task.id", "t-1");
    w.join().join().join();
    const [received, ...rest] = spansOfTraceExport(w.finish(), "application/x-protobuf");
    expect(rest).toEqual([]);
    expect(received).toMatchObject({
      service: "worker",
      scope: "@tm/flow",
      traceId: "ab".repeat(16),
      spanId: "cd".repeat(8),
      name: "tasks.worker.medium process",
      kind: 5,
      attributes: { "task.id": "t-1" },
    });
    // A double holds epoch milliseconds to ~0.2 µs: the sub-millisecond part survives.
    expect(Math.floor(received?.startMs ?? 0)).toBe(1_764_000_000_123);
    expect((received?.startMs ?? 0) - 1_764_000_000_123).toBeCloseTo(0.456789, 3);
    expect((received?.endMs ?? 0) - (received?.startMs ?? 0)).toBeCloseTo(2.5, 3);
  });

  test("reads the JSON encoding, and refuses any other content type by name", () => {
    const body = {
      resourceSpans: [
        {
          resource: { attributes: [{ key: "service.name", value: { stringValue: "ingest" } }] },
          scopeSpans: [
            {
              scope: { name: "x" },
              spans: [
                {
                  traceId: "01",
                  spanId: "02",
                  name: "POST",
                  kind: 3,
                  startTimeUnixNano: String(NANOS_START),
                  endTimeUnixNano: String(NANOS_START + 1_000_000n),
                },
              ],
            },
          ],
        },
      ],
    };
    const [received] = spansOfTraceExport(new TextEncoder().encode(JSON.stringify(body)), "application/json");
    expect(received).toMatchObject({ service: "ingest", name: "POST", kind: 3 });
    expect((received?.endMs ?? 0) - (received?.startMs ?? 0)).toBeCloseTo(1, 3);
    expect(() => spansOfTraceExport(new Uint8Array(), "text/plain")).toThrow(
      "an OTLP trace export is protobuf or JSON, not text/plain",
    );
  });
});

describe("the benchmark's OTLP sink", () => {
  test("keeps the spans of the exports it can read, refuses one it cannot with 400 and the reason, counts both", async () => {
    const sink = await startOtlpSink({ keepSpans: true });
    try {
      const post = (body: string, type: string) =>
        fetch(`${sink.url}/v1/traces`, { method: "POST", headers: { "content-type": type }, body });
      const json = {
        resourceSpans: [
          { scopeSpans: [{ spans: [{ traceId: "01", spanId: "02", name: "POST", kind: 3, startTimeUnixNano: "1" }] }] },
        ],
      };
      expect((await post(JSON.stringify(json), "application/json")).status).toBe(200);
      const refused = await post("hello", "text/plain");
      expect(refused.status).toBe(400);
      expect(await refused.text()).toBe("an OTLP trace export is protobuf or JSON, not text/plain");
      expect(sink.spans().map((s) => s.name)).toEqual(["POST"]);
      expect(sink.received()["/v1/traces"]?.requests).toBe(2);
    } finally {
      await sink.close();
    }
  });
});
