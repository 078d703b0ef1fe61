import { describe, expect, test } from "vitest";
import { parseArgs } from "../bench/src/args.js";
import { layoutOf } from "../bench/src/report.js";

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
