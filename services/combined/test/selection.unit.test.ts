import { describe, expect, test } from "vitest";
import { COMBINABLE_SERVICES, parseServiceList, SelectionError, serviceEnv } from "../src/selection.js";

describe("parseServiceList", () => {
  test("names in the order given, spaces ignored", () => {
    expect(parseServiceList("scheduler, result-store,notifier")).toEqual(["scheduler", "result-store", "notifier"]);
    expect(parseServiceList(COMBINABLE_SERVICES.join(","))).toEqual([...COMBINABLE_SERVICES]);
  });

  test.each([
    [undefined, /TM_SERVICES is required: a comma-separated list of gateway, enricher/],
    ["  ", /TM_SERVICES is required/],
    ["scheduler,client", /unknown service "client" \(known: gateway, /],
    ["scheduler,,audit", /unknown service ""/],
    ["audit,scheduler,audit", /"audit" is listed twice/],
  ])("%j is refused: %s", (value, message) => {
    expect(() => parseServiceList(value)).toThrow(SelectionError);
    expect(() => parseServiceList(value)).toThrow(message);
  });
});

describe("serviceEnv", () => {
  const env = {
    NATS_URL: "nats://n:4222",
    LOG_LEVEL: "info",
    NOTIFIER__OPS_PORT: "9086",
    RESULT_STORE__PORT: "9082",
    RESULT_STORE__LOG_LEVEL: "debug",
    AUDIT__LOG_LEVEL: "warn",
    // Not a service prefix: an ordinary variable that happens to contain "__".
    MY__SETTING: "kept",
  };
  const selection = ["notifier", "result-store", "audit"] as const;

  test("each service sees the shared variables plus its own overrides, and no override of another", () => {
    expect(serviceEnv("notifier", selection, env)).toEqual({
      NATS_URL: "nats://n:4222",
      LOG_LEVEL: "info",
      MY__SETTING: "kept",
      OPS_PORT: "9086",
    });
    expect(serviceEnv("result-store", selection, env)).toEqual({
      NATS_URL: "nats://n:4222",
      LOG_LEVEL: "debug",
      MY__SETTING: "kept",
      PORT: "9082",
    });
    // An override of a service that is not selected is dropped too: it was meant for another process.
    expect(serviceEnv("audit", ["audit"], { ...env, SCHEDULER__OPS_PORT: "1" })).not.toHaveProperty("OPS_PORT");
  });

  test("a bare OPS_PORT or PORT is refused with several services (one port for all) and allowed with one", () => {
    expect(() => serviceEnv("notifier", selection, { ...env, OPS_PORT: "9000" })).toThrow(
      "OPS_PORT would give 3 services one port: set it per service instead, e.g. NOTIFIER__OPS_PORT",
    );
    expect(() => serviceEnv("audit", selection, { PORT: "8082" })).toThrow(/PORT would give 3 services one port/);
    expect(serviceEnv("notifier", ["notifier"], { OPS_PORT: "9000" })).toEqual({ OPS_PORT: "9000" });
  });
});
