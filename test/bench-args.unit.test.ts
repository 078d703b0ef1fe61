import { existsSync, readdirSync } from "node:fs";
import { decodeMessage } from "@tm/flow";
import { describe, expect, test } from "vitest";
import { parseArgs } from "../bench/src/args.js";
import { DRAINABLE, drainMessage, perMessage } from "../bench/src/drain.js";
import { layoutOf, telemetryNote } from "../bench/src/report.js";
import { PIPELINE_SERVICES } from "../bench/src/systems/pipeline.js";

test("the pipeline the benchmark starts is every server service (a new service cannot be left out of it)", () => {
  // The rule the deployment test and bench/start.mjs use: a directory under services/ with a service definition.
  const services = readdirSync("services").filter((name) => existsSync(`services/${name}/src/service.ts`));
  expect([...PIPELINE_SERVICES].sort()).toEqual(services.sort());
});

describe("--combine", () => {
  test("takes a list of pipeline services, trimmed, in the order given", () => {
    expect(parseArgs(["--combine", "scheduler, audit"], "out").combine).toEqual(["scheduler", "audit"]);
    expect(parseArgs(["--combine=notifier,audit,deadletter"], "out").combine).toEqual([
      "notifier",
      "audit",
      "deadletter",
    ]);
    expect(parseArgs([], "out").combine).toEqual([]);
  });

  test.each([
    [["--combine", "audit"], "--combine needs at least two services"],
    [["--combine", "audit,billing"], "--combine: unknown service billing (known: gateway, ingest"],
    [["--combine", "audit,audit"], "--combine names a service twice"],
    [["--combine", "worker,audit", "--workers", "2"], "--combine cannot include worker with --workers > 1"],
    [["--combine", "gateway,audit", "--gateways", "2"], "--combine cannot include gateway with --gateways > 1"],
    [["--combine", "notifier,audit", "--scaling"], "--combine and --scaling cannot be used together"],
  ])("%j is refused: %s", (argv, message) => {
    expect(() => parseArgs(argv, "out")).toThrow(message);
  });

  test("the report names the layout", () => {
    expect(layoutOf(1, 1, [])).toBe("1 worker, 1 gateway, one process per service");
    expect(layoutOf(2, 1, ["notifier", "audit"])).toBe(
      "2 workers, 1 gateway, notifier+audit in one process (services/combined), the others one process each",
    );
  });
});

describe("--telemetry", () => {
  test("on by default (as the services start); on, off or export when given", () => {
    expect(parseArgs([], "out").telemetry).toBe("on");
    expect(parseArgs(["--telemetry", "off"], "out").telemetry).toBe("off");
    expect(parseArgs(["--telemetry=export"], "out").telemetry).toBe("export");
    expect(parseArgs(["--telemetry=on"], "out").telemetry).toBe("on");
  });

  test.each([[["--telemetry"]], [["--telemetry", "no"]], [["--telemetry=OFF"]]])("%j is refused", (argv) => {
    expect(() => parseArgs(argv, "out")).toThrow("--telemetry must be one of on, off, export");
  });

  test("the report names the mode", () => {
    expect(telemetryNote("on")).toBe("telemetry on, no exporter");
    expect(telemetryNote("off")).toMatch(/OTEL_SDK_DISABLED=true/);
    expect(telemetryNote("export")).toMatch(/OTLP/);
  });
});

describe("--reference-rate", () => {
  test("absent by default; a positive number when given", () => {
    expect(parseArgs([], "out").referenceRate).toBeUndefined();
    expect(parseArgs(["--reference-rate", "160"], "out").referenceRate).toBe(160);
  });

  test.each([
    [["--reference-rate", "0"], "--reference-rate needs a positive number"],
    [["--reference-rate", "fast"], "--reference-rate needs a positive number"],
    [["--reference-rate", "100", "--soak", "60"], "--reference-rate applies to the comparison only"],
    [["--reference-rate", "100", "--drain", "audit"], "--reference-rate applies to the comparison only"],
    [["--reference-rate", "100", "--breakdown"], "--reference-rate applies to the comparison only"],
  ])("%j is refused", (argv, message) => {
    expect(() => parseArgs(argv, "out")).toThrow(message);
  });
});

describe("--client-flow", () => {
  test("two calls by default (the headline); one-call when given", () => {
    expect(parseArgs([], "out").clientFlow).toBe("two-calls");
    expect(parseArgs(["--client-flow", "one-call"], "out").clientFlow).toBe("one-call");
    expect(parseArgs(["--client-flow=two-calls"], "out").clientFlow).toBe("two-calls");
  });

  test.each([[["--client-flow"]], [["--client-flow", "one"]], [["--client-flow=ONE-CALL"]]])(
    "%j is refused",
    (argv) => {
      expect(() => parseArgs(argv, "out")).toThrow("--client-flow must be one of two-calls, one-call");
    },
  );

  test("the report's layout says when each task is one call", () => {
    expect(layoutOf(1, 1, [], "two-calls")).toBe("1 worker, 1 gateway, one process per service");
    expect(layoutOf(1, 1, [], "one-call")).toBe(
      "1 worker, 1 gateway, one process per service; each task one SubmitTaskAndStreamStatus call",
    );
  });
});

describe("--breakdown", () => {
  test("off by default; with --breakdown-rate the tasks are paced", () => {
    expect(parseArgs([], "out").breakdown).toBe(false);
    const options = parseArgs(["--breakdown", "--breakdown-rate", "40", "--telemetry", "export"], "out");
    expect(options.breakdown).toBe(true);
    expect(options.breakdownRate).toBe(40);
    expect(parseArgs(["--breakdown", "--only", "pipeline", "--size", "small"], "out").breakdown).toBe(true);
  });

  test.each([
    [["--breakdown-rate", "40"], "--breakdown-rate only applies with --breakdown"],
    [["--breakdown", "--breakdown-rate", "0"], "--breakdown-rate needs a positive number"],
    [["--breakdown", "--soak", "60"], "--breakdown is a run of its own"],
    [["--breakdown", "--scaling"], "--breakdown is a run of its own"],
    [["--breakdown", "--only", "raw"], "--breakdown measures the pipeline only"],
    [["--breakdown", "--telemetry", "on"], "--breakdown reads the exported spans"],
  ])("%j is refused: %s", (argv, message) => {
    expect(() => parseArgs(argv, "out")).toThrow(message);
  });
});

describe("--drain", () => {
  test("takes a service it can measure", () => {
    expect(parseArgs(["--drain", "audit"], "out").drain).toBe("audit");
    expect(parseArgs(["--drain=notifier", "--telemetry", "off"], "out")).toMatchObject({
      drain: "notifier",
      telemetry: "off",
    });
    expect(parseArgs([], "out").drain).toBeUndefined();
    expect(parseArgs(["--drain", "scheduler", "--bare-fetch", "16"], "out").bareFetch).toBe(16);
    expect(parseArgs(["--drain", "scheduler"], "out").bareFetch).toBeUndefined();
    expect(parseArgs(["--drain", "audit", "--instructions"], "out").instructions).toBe(true);
    expect(parseArgs(["--drain", "audit"], "out").instructions).toBe(false);
  });

  test.each([
    [["--drain", "gateway"], '--drain must be one of audit, notifier, scheduler, result-store, worker, got "gateway"'],
    [["--drain"], "--drain must be one of audit, notifier, scheduler, result-store, worker, got undefined"],
    [["--drain", "audit", "--only", "raw"], "--drain is a run of its own"],
    [["--drain", "audit", "--soak", "60"], "--drain is a run of its own"],
    [["--drain", "audit", "--combine", "notifier,audit"], "--drain runs one service alone"],
    [["--bare-fetch", "16"], "--bare-fetch only applies with --drain"],
    [["--drain", "audit", "--bare-fetch", "0"], "--bare-fetch"],
    [["--instructions"], "--instructions only applies with --drain"],
    [["--drain", "audit", "--instructions", "--profile"], "--instructions cannot be combined with --profile"],
    [["--drain", "audit", "--instructions", "--alloc-profile"], "--instructions cannot be combined"],
  ])("%j is refused: %s", (argv, message) => {
    expect(() => parseArgs(argv, "out")).toThrow(message);
  });

  test.each(DRAINABLE)("every message of a %s batch is valid on its subject and unique", (service) => {
    const messages = Array.from({ length: 12 }, (_, i) => drainMessage(service, "0000abcd", i));
    for (const message of messages)
      expect(() => decodeMessage(message.subject, new TextEncoder().encode(message.body))).not.toThrow();
    expect(new Set(messages.map((m) => m.msgId)).size).toBe(messages.length);
  });

  test("a notifier batch gives each task its states in lifecycle order, so every update is applied", () => {
    const events = Array.from({ length: 8 }, (_, i) => JSON.parse(drainMessage("notifier", "0000abcd", i).body));
    expect(events.map((e) => e.state)).toEqual([
      ...["PENDING", "INGESTED", "SCHEDULED", "RUNNING"],
      ...["PENDING", "INGESTED", "SCHEDULED", "RUNNING"],
    ]);
    expect(new Set(events.map((e) => e.taskId)).size).toBe(2);
    for (let i = 1; i < 4; i++) expect(events[i].version).toBeGreaterThan(events[i - 1].version);
  });

  test("counters become per-message figures: each one's growth over the batch", () => {
    const before = { inMsgs: 100, outMsgs: 50, inBytes: 1_000, outBytes: 0 };
    const after = { inMsgs: 300, outMsgs: 250, inBytes: 41_000, outBytes: 20_000 };
    expect(perMessage(before, after, 100)).toEqual({ inMsgs: 2, outMsgs: 2, inBytes: 400, outBytes: 200 });
    expect(perMessage({ reads: 7, writes: 9 }, { reads: 8, writes: 13 }, 4)).toEqual({ reads: 0.25, writes: 1 });
  });
});

describe("--concurrency-keys", () => {
  test("defaults to none and takes N:L", () => {
    expect(parseArgs([], "out").concurrencyKeys).toEqual({ keys: 0, limit: 0 });
    expect(parseArgs(["--concurrency-keys", "100:10"], "out").concurrencyKeys).toEqual({ keys: 100, limit: 10 });
  });

  test.each([["100"], ["0:1"], ["1:0"], ["1:1001"], ["a:b"], ["100001:1"]])(
    "%s is refused naming the flag",
    (value) => {
      expect(() => parseArgs(["--concurrency-keys", value], "out")).toThrow(
        `--concurrency-keys needs N:L, N keys from 1 to 100000 and a limit L from 1 to 1000, got "${value}"`,
      );
    },
  );
});

describe("--fairness-keys", () => {
  test("defaults to none and takes N:W", () => {
    expect(parseArgs([], "out").fairnessKeys).toEqual({ keys: 0, window: 0 });
    expect(parseArgs(["--fairness-keys", "8:16"], "out").fairnessKeys).toEqual({ keys: 8, window: 16 });
  });

  test.each([["8"], ["0:1"], ["1:0"], ["1:100001"], ["a:b"], ["100001:1"]])(
    "%s is refused naming the flag",
    (value) => {
      expect(() => parseArgs(["--fairness-keys", value], "out")).toThrow(
        `--fairness-keys needs N:W, N keys from 1 to 100000 and a window W from 1 to 100000, got "${value}"`,
      );
    },
  );
});

describe("--redis-replicas", () => {
  test("defaults to 0 and takes a whole number up to 5", () => {
    expect(parseArgs([], "out").redisReplicas).toBe(0);
    expect(parseArgs(["--redis-replicas", "1"], "out").redisReplicas).toBe(1);
    expect(parseArgs(["--redis-replicas=2"], "out").redisReplicas).toBe(2);
  });

  test.each([["-1"], ["6"], ["1.5"], ["one"]])("%s is refused naming the flag", (value) => {
    expect(() => parseArgs(["--redis-replicas", value], "out")).toThrow(
      `--redis-replicas needs a whole number from 0 to 5, got "${value}"`,
    );
  });
});
