import { DEFAULT_FLOW_SETTINGS, STREAMS, streamConfig } from "@tm/flow";
import { describe, expect, test } from "vitest";
import {
  ConfigError,
  DEFAULT_TASK_RETENTION_SECONDS,
  flowSettingsOf,
  loadConfig,
  nonNegativeInt,
} from "../src/config.js";
import { natsInboxPrefixOf } from "../src/nats.js";
import { redisTargetOf } from "../src/redis.js";

describe("loadConfig with nonNegativeInt", () => {
  const shape = { WINDOW_MS: nonNegativeInt.default(50) };

  test("unset or empty takes the default; 0 and positive integers are accepted", () => {
    expect(loadConfig(shape, {}).WINDOW_MS).toBe(50);
    expect(loadConfig(shape, { WINDOW_MS: "" }).WINDOW_MS).toBe(50);
    expect(loadConfig(shape, { WINDOW_MS: "0" }).WINDOW_MS).toBe(0);
    expect(loadConfig(shape, { WINDOW_MS: "20" }).WINDOW_MS).toBe(20);
  });

  test.each([
    ["-1", "must be >= 0"],
    ["1.5", "must be an integer"],
    ["soon", "must be a number"],
  ])("%s is refused with a message naming the variable: %s", (value, message) => {
    expect(() => loadConfig(shape, { WINDOW_MS: value })).toThrow(ConfigError);
    expect(() => loadConfig(shape, { WINDOW_MS: value })).toThrow(`WINDOW_MS: ${message} (got "${value}")`);
  });

  test("FLOW_OUTAGE_HOLD_MS uses it: 0 (never hold) is valid, a negative value is not", () => {
    expect(loadConfig({}, { FLOW_OUTAGE_HOLD_MS: "0" }).FLOW_OUTAGE_HOLD_MS).toBe(0);
    expect(() => loadConfig({}, { FLOW_OUTAGE_HOLD_MS: "-5" })).toThrow("FLOW_OUTAGE_HOLD_MS: must be >= 0");
  });
});

describe("TASK_ROUTES", () => {
  test("parsed into routes; every routed type must be built in or in TASK_TYPES, checked against that variable", () => {
    const config = loadConfig({}, { TASK_TYPES: "transcode", TASK_ROUTES: "transcode=gpu,checksum=gpu" });
    expect(config.TASK_ROUTES.poolOf("transcode")).toBe("gpu");
    expect(loadConfig({}, {}).TASK_ROUTES.pools).toEqual([]);
    expect(() => loadConfig({}, { TASK_ROUTES: "transcode=gpu,resize=io" })).toThrow(ConfigError);
    expect(() => loadConfig({}, { TASK_ROUTES: "transcode=gpu,resize=io" })).toThrow(
      'TASK_ROUTES: routes "transcode", "resize", not a task type of this deployment (echo, sleep, checksum, flaky, fail): add it to TASK_TYPES, or remove its route (got "transcode=gpu,resize=io")',
    );
    expect(() => loadConfig({}, { TASK_ROUTES: "echo=GPU" })).toThrow('TASK_ROUTES: "GPU" is not a pool name');
  });
});

describe("the streams' limits", () => {
  test("default to the contract's numbers and reach the flow settings the streams are provisioned with", () => {
    expect(flowSettingsOf(loadConfig({}, {}))).toMatchObject({
      maxAgeMs: DEFAULT_FLOW_SETTINGS.maxAgeMs,
      maxMsgs: 1_000_000,
      maxBytes: 512 * 1024 * 1024,
    });
    const raised = loadConfig(
      {},
      { FLOW_STREAM_MAX_MSGS: "5000000", FLOW_STREAM_MAX_BYTES: "4294967296", FLOW_STREAM_MAX_AGE_MS: "172800000" },
    );
    const settings = flowSettingsOf(raised);
    expect(settings).toMatchObject({ maxMsgs: 5_000_000, maxBytes: 4_294_967_296, maxAgeMs: 172_800_000 });
    expect(streamConfig(STREAMS.tasks, settings)).toMatchObject({ max_msgs: 5_000_000, max_bytes: 4_294_967_296 });
  });

  test.each(["FLOW_STREAM_MAX_MSGS", "FLOW_STREAM_MAX_BYTES", "FLOW_STREAM_MAX_AGE_MS"])(
    "%s of 0 or not a number is refused naming it",
    (name) => {
      expect(() => loadConfig({}, { [name]: "0" })).toThrow(`${name}: must be > 0`);
      expect(() => loadConfig({}, { [name]: "lots" })).toThrow(`${name}: must be a number`);
    },
  );
});

describe("TASK_RETENTION_SECONDS", () => {
  test("defaults to a week (@tm/store's Bounds.taskTtlSeconds); an hour to 90 days is accepted", () => {
    expect(loadConfig({}, {}).TASK_RETENTION_SECONDS).toBe(604_800);
    expect(DEFAULT_TASK_RETENTION_SECONDS).toBe(604_800);
    expect(loadConfig({}, { TASK_RETENTION_SECONDS: "3600" }).TASK_RETENTION_SECONDS).toBe(3_600);
    expect(loadConfig({}, { TASK_RETENTION_SECONDS: "7776000" }).TASK_RETENTION_SECONDS).toBe(7_776_000);
  });

  test.each([
    ["600", "must be at least 3600 (1 hour): a task's records must outlive its queueing and retries"],
    ["7776001", "must be at most 7776000 (90 days)"],
    ["86400.5", "must be a whole number of seconds"],
    ["a week", "must be a number"],
  ])("%s is refused naming the variable: %s", (value, message) => {
    expect(() => loadConfig({}, { TASK_RETENTION_SECONDS: value })).toThrow(
      `TASK_RETENTION_SECONDS: ${message} (got "${value}")`,
    );
  });
});

describe("TASK_SUCCEEDED_RETENTION_SECONDS", () => {
  test("unset by default; 60 s up to TASK_RETENTION_SECONDS is accepted", () => {
    expect(loadConfig({}, {}).TASK_SUCCEEDED_RETENTION_SECONDS).toBeUndefined();
    expect(loadConfig({}, { TASK_SUCCEEDED_RETENTION_SECONDS: "60" }).TASK_SUCCEEDED_RETENTION_SECONDS).toBe(60);
    const same = { TASK_RETENTION_SECONDS: "3600", TASK_SUCCEEDED_RETENTION_SECONDS: "3600" };
    expect(loadConfig({}, same).TASK_SUCCEEDED_RETENTION_SECONDS).toBe(3_600);
  });

  test.each([
    ["59", {}, "must be at least 60: a client that saw SUCCEEDED must still find the result"],
    ["90.5", {}, "must be a whole number of seconds"],
    [
      "7200",
      { TASK_RETENTION_SECONDS: "3600" },
      "must not exceed TASK_RETENTION_SECONDS (3600): it shortens how long a succeeded task is kept",
    ],
  ])("%s is refused naming the variable", (value, env, message) => {
    expect(() => loadConfig({}, { ...env, TASK_SUCCEEDED_RETENTION_SECONDS: value })).toThrow(
      `TASK_SUCCEEDED_RETENTION_SECONDS: ${message} (got "${value}")`,
    );
  });
});

test("NATS_INBOX_PREFIX: _INBOX_<NATS_USER> with a user (its permissions' only inbox), else nats.js's; a bad one is named", () => {
  expect(natsInboxPrefixOf(loadConfig({}, { NATS_USER: "worker", NATS_PASSWORD: "p" }))).toBe("_INBOX_worker");
  expect(natsInboxPrefixOf(loadConfig({}, {}))).toBeUndefined();
  expect(natsInboxPrefixOf(loadConfig({}, { NATS_USER: "worker", NATS_INBOX_PREFIX: "_R_worker" }))).toBe("_R_worker");
  expect(() => loadConfig({}, { NATS_INBOX_PREFIX: "_INBOX.worker" })).toThrow("NATS_INBOX_PREFIX");
});

describe("Redis Sentinel", () => {
  test("REDIS_SENTINELS is a host:port list (IPv6 in brackets); the master name defaults to Bitnami's mymaster", () => {
    const config = loadConfig({}, { REDIS_SENTINELS: "sentinel-0:26379, sentinel-1:26380,[::1]:26381" });
    expect(redisTargetOf(config)).toEqual({
      url: "redis://127.0.0.1:6379",
      sentinels: [
        { host: "sentinel-0", port: 26379 },
        { host: "sentinel-1", port: 26380 },
        { host: "::1", port: 26381 },
      ],
      sentinelMaster: "mymaster",
      sentinelPassword: undefined,
      sentinelUsername: undefined,
      sentinelTls: false,
    });
    expect(redisTargetOf(loadConfig({}, {})).sentinels).toBeUndefined();
  });

  test.each(["sentinel-0", "sentinel-0:0", "sentinel-0:70000", "a:1,,b:2", "http://sentinel:26379"])(
    "%s is refused naming the variable and the bad address",
    (value) => {
      expect(() => loadConfig({}, { REDIS_SENTINELS: value })).toThrow(
        /REDIS_SENTINELS: must be comma-separated host:port pairs, e\.g\. .*\(bad: "/,
      );
    },
  );
});
