import { Code } from "@connectrpc/connect";
import { DependencyPolicy, IdempotencyKeyReuse, Priority, TaskState } from "@tm/proto";
import { describe, expect, test } from "vitest";
import { DEFAULT_ADDR, type Invocation, normaliseAddr, parseCommandLine } from "../src/args.js";
import { submitRequestOf } from "../src/commands/submit.js";
import { type LineOutcome, parseBatchLines, prepareCall } from "../src/commands/submit-batch.js";
import { ExitCode, UsageError } from "../src/exit-codes.js";
import { run } from "../src/run.js";

function usageErrorOf(argv: string[]): string {
  try {
    parseCommandLine(argv);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error(`expected a usage error for ${argv.join(" ")}`);
}

describe("parseCommandLine", () => {
  test("submit with every option", () => {
    const invocation = parseCommandLine([
      "submit",
      "sleep",
      "--payload",
      '{"ms":500}',
      "--priority",
      "HIGH",
      "--idempotency-key",
      "k1",
      "--meta",
      "team=a",
      "--meta",
      "url=http://x/?a=b",
      "--watch",
    ]);
    expect(invocation).toMatchObject({
      command: "submit",
      type: "sleep",
      payload: { ms: 500 },
      priority: Priority.HIGH,
      idempotencyKey: "k1",
      metadata: { team: "a", url: "http://x/?a=b" },
      watch: true,
      globals: { addr: DEFAULT_ADDR, json: false },
    });
  });

  test("priority defaults to medium; global flags may come before the command", () => {
    const invocation = parseCommandLine(["--json", "--addr", "gw:50051", "submit", "echo"], { TASKCTL_API_KEY: "s" });
    expect(invocation).toMatchObject({
      priority: Priority.MEDIUM,
      globals: { addr: "http://gw:50051", json: true, apiKey: "s" },
    });
  });

  test("environment supplies the address and the result store URL", () => {
    const env = { TASKCTL_ADDR: "http://10.0.0.1:9000", RESULT_STORE_URL: "http://rs:1/" };
    expect(parseCommandLine(["result", "abc"], env)).toMatchObject({
      globals: { addr: "http://10.0.0.1:9000" },
      resultStoreUrl: "http://rs:1",
    });
  });

  test("--retries: 4 by default, 0 to 20, anything else named", () => {
    expect(parseCommandLine(["submit", "echo"])).toMatchObject({ retries: 4 });
    expect(parseCommandLine(["submit", "echo", "--retries", "0"])).toMatchObject({ retries: 0 });
    expect(parseCommandLine(["submit", "echo", "--retries", "20"])).toMatchObject({ retries: 20 });
    for (const bad of ["21", "-1", "1.5", "two", ""]) {
      expect(usageErrorOf(["submit", "echo", `--retries=${bad}`])).toBe(
        `--retries must be a whole number from 0 to 20 (got "${bad}")`,
      );
    }
  });

  test("--delay and --at make a delayed task; bad values and both at once are named", () => {
    expect(parseCommandLine(["submit", "echo"])).not.toHaveProperty("schedule");
    expect(parseCommandLine(["submit", "echo", "--delay", "90s"])).toMatchObject({ schedule: { delayMs: 90_000 } });
    expect(parseCommandLine(["submit", "echo", "--delay", "2h"])).toMatchObject({ schedule: { delayMs: 7_200_000 } });
    expect(parseCommandLine(["submit", "echo", "--at", "2026-12-24T18:00:00Z"])).toMatchObject({
      schedule: { runAt: new Date("2026-12-24T18:00:00Z") },
    });
    for (const bad of ["90", "1.5h", "-5s", "soon"]) {
      expect(usageErrorOf(["submit", "echo", `--delay=${bad}`])).toBe(
        `--delay must be a duration like 30s, 15m, 2h, 1d (got "${bad}")`,
      );
    }
    expect(usageErrorOf(["submit", "echo", "--at", "tomorrow"])).toBe(
      '--at must be an ISO time such as 2026-01-31T12:00:00Z (got "tomorrow")',
    );
    expect(usageErrorOf(["submit", "echo", "--delay", "1m", "--at", "2026-12-24T18:00:00Z"])).toBe(
      "--delay and --at cannot be combined",
    );
  });

  test("the request carries --delay as a Duration and --at as a Timestamp", () => {
    const requestOf = (argv: string[]) =>
      submitRequestOf(parseCommandLine(argv) as Extract<Invocation, { command: "submit" }>);
    expect(requestOf(["submit", "echo"]).schedule).toBeUndefined();
    expect(requestOf(["submit", "echo", "--delay", "15m"]).schedule).toMatchObject({
      case: "delay",
      value: { seconds: 900n, nanos: 0 },
    });
    expect(requestOf(["submit", "echo", "--at", "2026-12-24T18:00:00.250Z"]).schedule).toMatchObject({
      case: "runAt",
      value: { seconds: BigInt(Date.parse("2026-12-24T18:00:00Z") / 1000), nanos: 250_000_000 },
    });
  });

  test("--attempt-timeout and --max-attempts reach the request as timeout and max_attempts; bad values are named", () => {
    const invocation = parseCommandLine(["submit", "sleep", "--attempt-timeout", "1500ms", "--max-attempts", "1"]);
    expect(invocation).toMatchObject({ attemptTimeoutMs: 1_500, maxAttempts: 1 });
    const request = submitRequestOf(invocation as Extract<Invocation, { command: "submit" }>);
    expect(request.timeout).toMatchObject({ seconds: 1n, nanos: 500_000_000 });
    expect(request.maxAttempts).toBe(1);
    expect(parseCommandLine(["submit", "sleep", "--attempt-timeout", "2h"])).toMatchObject({
      attemptTimeoutMs: 7_200_000,
    });
    for (const bad of ["0s", "30", "1d", "soon"]) {
      expect(usageErrorOf(["submit", "echo", `--attempt-timeout=${bad}`])).toBe(
        `--attempt-timeout must be a duration like 500ms, 30s, 15m, 2h (got "${bad}")`,
      );
    }
    for (const bad of ["0", "-1", "1.5", "all"]) {
      expect(usageErrorOf(["submit", "echo", `--max-attempts=${bad}`])).toMatch(
        /^--max-attempts must be a whole number/,
      );
    }
  });

  test("--retry-* reach the request as retry_backoff; the others need --retry-delay; bad values are named", () => {
    const invocation = parseCommandLine([
      "submit",
      "flaky",
      "--retry-delay",
      "500ms",
      "--retry-multiplier",
      "2",
      "--retry-max-delay",
      "1m",
      "--retry-jitter",
      "0.2",
    ]);
    expect(invocation).toMatchObject({
      retryBackoff: { delayMs: 500, multiplier: 2, maxDelayMs: 60_000, jitter: 0.2 },
    });
    const request = submitRequestOf(invocation as Extract<Invocation, { command: "submit" }>);
    expect(request.retryBackoff).toMatchObject({
      delay: { seconds: 0n, nanos: 500_000_000 },
      multiplier: 2,
      maxDelay: { seconds: 60n },
      jitter: 0.2,
    });
    // Only the first wait: the rest left to the gateway's defaults (multiplier 0 = 1, no max_delay = 1 h).
    const fixed = parseCommandLine(["submit", "flaky", "--retry-delay", "0s"]);
    expect(fixed).toMatchObject({ retryBackoff: { delayMs: 0 } });
    const fixedRequest = submitRequestOf(fixed as Extract<Invocation, { command: "submit" }>);
    expect(fixedRequest.retryBackoff).toMatchObject({ delay: { seconds: 0n }, multiplier: 0, jitter: 0 });
    expect(fixedRequest.retryBackoff?.maxDelay).toBeUndefined();
    expect(
      submitRequestOf(parseCommandLine(["submit", "echo"]) as Extract<Invocation, { command: "submit" }>),
    ).not.toHaveProperty("retryBackoff");

    expect(usageErrorOf(["submit", "echo", "--retry-multiplier", "2", "--retry-jitter", "0.1"])).toBe(
      "--retry-multiplier, --retry-jitter needs --retry-delay (the first wait)",
    );
    expect(usageErrorOf(["submit", "echo", "--retry-delay", "soon"])).toBe(
      '--retry-delay must be a duration like 0s, 500ms, 30s, 15m, 1h (got "soon")',
    );
    expect(usageErrorOf(["submit", "echo", "--retry-delay", "1s", "--retry-max-delay", "1d"])).toMatch(
      /^--retry-max-delay must be a duration/,
    );
    expect(usageErrorOf(["submit", "echo", "--retry-delay", "1s", "--retry-multiplier", "twice"])).toBe(
      '--retry-multiplier must be a number like 2 (got "twice")',
    );
    expect(usageErrorOf(["submit", "echo", "--retry-delay", "1s", "--retry-jitter="])).toMatch(
      /^--retry-jitter must be a fraction from 0 to 1/,
    );
    expect(
      parseCommandLine([
        "schedule",
        "add",
        "n",
        "* * * * *",
        "flaky",
        "--retry-delay",
        "2s",
        "--retry-multiplier",
        "3",
      ]),
    ).toMatchObject({ action: "add", retryBackoff: { delayMs: 2_000, multiplier: 3 } });
  });

  test("--expires-after reaches the request as expires_after; bad values are named", () => {
    const invocation = parseCommandLine(["submit", "echo", "--expires-after", "15m"]);
    expect(invocation).toMatchObject({ expiresAfterMs: 900_000 });
    const request = submitRequestOf(invocation as Extract<Invocation, { command: "submit" }>);
    expect(request.expiresAfter).toMatchObject({ seconds: 900n });
    expect(parseCommandLine(["submit", "echo", "--expires-after", "2d"])).toMatchObject({
      expiresAfterMs: 172_800_000,
    });
    for (const bad of ["0s", "15", "1w", "later"]) {
      expect(usageErrorOf(["submit", "echo", `--expires-after=${bad}`])).toBe(
        `--expires-after must be a duration like 30s, 15m, 2h, 1d (got "${bad}")`,
      );
    }
    expect(parseCommandLine(["schedule", "add", "n", "* * * * *", "echo", "--expires-after", "30s"])).toMatchObject({
      expiresAfterMs: 30_000,
    });
  });

  test("--heartbeat-timeout reaches the request as heartbeat_timeout, for submit and schedule add", () => {
    const invocation = parseCommandLine(["submit", "echo", "--heartbeat-timeout", "30s"]);
    expect(submitRequestOf(invocation as Extract<Invocation, { command: "submit" }>).heartbeatTimeout).toMatchObject({
      seconds: 30n,
    });
    expect(parseCommandLine(["schedule", "add", "n", "* * * * *", "echo", "--heartbeat-timeout", "2m"])).toMatchObject({
      heartbeatTimeoutMs: 120_000,
    });
    expect(usageErrorOf(["submit", "echo", "--heartbeat-timeout=1d"])).toBe(
      '--heartbeat-timeout must be a duration like 500ms, 30s, 15m, 2h (got "1d")',
    );
  });

  test("--succeeded-retention reaches the request as succeeded_retention; bad values are named", () => {
    const invocation = parseCommandLine(["submit", "echo", "--succeeded-retention", "10m"]);
    expect(invocation).toMatchObject({ succeededRetentionMs: 600_000 });
    const request = submitRequestOf(invocation as Extract<Invocation, { command: "submit" }>);
    expect(request.succeededRetention).toMatchObject({ seconds: 600n });
    expect(
      submitRequestOf(parseCommandLine(["submit", "echo"]) as Extract<Invocation, { command: "submit" }>),
    ).not.toHaveProperty("succeededRetention");
    expect(usageErrorOf(["submit", "echo", "--succeeded-retention=soon"])).toBe(
      '--succeeded-retention must be a duration like 30s, 15m, 2h, 1d (got "soon")',
    );
  });

  test("--depends-on reaches the request as depends_on, repeated or comma-separated", () => {
    const [a, b, c] = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
    const invocation = parseCommandLine(["submit", "echo", "--depends-on", `${a}, ${b}`, "--depends-on", c]);
    expect(invocation).toMatchObject({ dependsOn: [a, b, c] });
    expect(submitRequestOf(invocation as Extract<Invocation, { command: "submit" }>).dependsOn).toEqual([a, b, c]);
    // None: the field is left out.
    const plain = parseCommandLine(["submit", "echo"]) as Extract<Invocation, { command: "submit" }>;
    expect(plain.dependsOn).toEqual([]);
    expect(submitRequestOf(plain)).not.toHaveProperty("dependsOn");
    // --run-when finished: whatever the outcome.
    const finished = parseCommandLine(["submit", "echo", "--depends-on", a, "--run-when", "finished"]);
    expect(submitRequestOf(finished as Extract<Invocation, { command: "submit" }>).dependencyPolicy).toBe(
      DependencyPolicy.ALL_FINISHED,
    );
    expect(submitRequestOf(plain)).not.toHaveProperty("dependencyPolicy");
    expect(usageErrorOf(["submit", "echo", "--run-when", "always"])).toBe(
      'submit: --run-when is succeeded or finished (got "always")',
    );
  });

  test("--key-reuse after-finished reaches the request with its --idempotency-key; never by default; mistakes named", () => {
    type Submit = Extract<Invocation, { command: "submit" }>;
    const reused = parseCommandLine(["submit", "echo", "--idempotency-key", "sync-7", "--key-reuse", "after-finished"]);
    expect(submitRequestOf(reused as Submit)).toMatchObject({
      idempotencyKey: "sync-7",
      idempotencyKeyReuse: IdempotencyKeyReuse.AFTER_FINISHED,
    });
    for (const args of [
      ["--idempotency-key", "sync-7"],
      ["--idempotency-key", "sync-7", "--key-reuse", "never"],
    ]) {
      expect(submitRequestOf(parseCommandLine(["submit", "echo", ...args]) as Submit)).not.toHaveProperty(
        "idempotencyKeyReuse",
      );
    }
    expect(usageErrorOf(["submit", "echo", "--key-reuse", "after-finished"])).toBe(
      "submit: --key-reuse goes with --idempotency-key",
    );
    expect(usageErrorOf(["submit", "echo", "--idempotency-key", "k", "--key-reuse", "always"])).toBe(
      'submit: --key-reuse is never, after-finished or replace-waiting (got "always")',
    );
    // replace-waiting: a debounce of a delayed task.
    const debounced = parseCommandLine([
      "submit",
      "echo",
      "--idempotency-key",
      "reindex-7",
      "--key-reuse",
      "replace-waiting",
      "--delay",
      "30s",
    ]);
    expect(submitRequestOf(debounced as Submit)).toMatchObject({
      idempotencyKeyReuse: IdempotencyKeyReuse.REPLACE_WAITING,
    });
    expect(usageErrorOf(["submit", "echo", "--idempotency-key", "k", "--key-reuse", "replace-waiting"])).toBe(
      "submit: --key-reuse replace-waiting replaces a waiting task: it goes with --delay or --at",
    );
  });

  test("--concurrency-key and --concurrency-limit reach the request together; one alone or a bad value is named", () => {
    type Submit = Extract<Invocation, { command: "submit" }>;
    const limited = parseCommandLine([
      "submit",
      "echo",
      "--concurrency-key",
      "tenant:acme",
      "--concurrency-limit",
      "3",
    ]);
    expect(limited).toMatchObject({ concurrency: { key: "tenant:acme", limit: 3 } });
    expect(submitRequestOf(limited as Submit)).toMatchObject({ concurrencyKey: "tenant:acme", concurrencyLimit: 3 });
    const plain = parseCommandLine(["submit", "echo"]) as Submit;
    expect(plain).not.toHaveProperty("concurrency");
    expect(submitRequestOf(plain)).not.toHaveProperty("concurrencyKey");
    expect(submitRequestOf(plain)).not.toHaveProperty("concurrencyLimit");
    expect(usageErrorOf(["submit", "echo", "--concurrency-key", "tenant:acme"])).toBe(
      "submit: --concurrency-key goes with --concurrency-limit N",
    );
    expect(usageErrorOf(["submit", "echo", "--concurrency-limit", "3"])).toBe(
      "submit: --concurrency-limit goes with --concurrency-key KEY",
    );
    expect(usageErrorOf(["submit", "echo", "--concurrency-key", "tenant acme", "--concurrency-limit", "3"])).toBe(
      'submit: --concurrency-key must be 1 to 128 letters, digits or _ . : @ / = + - (got "tenant acme")',
    );
    expect(usageErrorOf(["submit", "echo", "--concurrency-key", "", "--concurrency-limit", "3"])).toContain(
      "--concurrency-key must be 1 to 128",
    );
    expect(
      usageErrorOf(["submit", "echo", "--concurrency-key", "k".repeat(129), "--concurrency-limit", "3"]),
    ).toContain("--concurrency-key must be 1 to 128");
    for (const limit of ["0", "1001", "1.5", "", "three"]) {
      expect(usageErrorOf(["submit", "echo", "--concurrency-key", "t", "--concurrency-limit", limit])).toBe(
        `submit: --concurrency-limit must be a whole number from 1 to 1000 (got "${limit}")`,
      );
    }
    expect(
      parseCommandLine(["submit", "echo", "--concurrency-key", "k".repeat(128), "--concurrency-limit", "1000"]),
    ).toMatchObject({ concurrency: { limit: 1000 } });
  });

  test("--fairness-key reaches the request, with --fairness-weight or without; a weight alone or a bad value is named", () => {
    type Submit = Extract<Invocation, { command: "submit" }>;
    const weighted = parseCommandLine(["submit", "echo", "--fairness-key", "tenant:acme", "--fairness-weight", "3"]);
    expect(weighted).toMatchObject({ fairness: { key: "tenant:acme", weight: 3 } });
    expect(submitRequestOf(weighted as Submit)).toMatchObject({ fairnessKey: "tenant:acme", fairnessWeight: 3 });
    // No weight: the field is left unset, the gateway's default (1).
    const keyed = parseCommandLine(["submit", "echo", "--fairness-key", "tenant:acme"]) as Submit;
    expect(keyed.fairness).toEqual({ key: "tenant:acme" });
    expect(submitRequestOf(keyed)).toMatchObject({ fairnessKey: "tenant:acme" });
    expect(submitRequestOf(keyed)).not.toHaveProperty("fairnessWeight");
    const plain = parseCommandLine(["submit", "echo"]) as Submit;
    expect(plain).not.toHaveProperty("fairness");
    expect(submitRequestOf(plain)).not.toHaveProperty("fairnessKey");
    expect(submitRequestOf(plain)).not.toHaveProperty("fairnessWeight");
    // With a concurrency key too: each its own field.
    expect(
      submitRequestOf(
        parseCommandLine([
          "submit",
          "echo",
          "--concurrency-key",
          "account:42",
          "--concurrency-limit",
          "2",
          "--fairness-key",
          "tenant:acme",
        ]) as Submit,
      ),
    ).toMatchObject({ concurrencyKey: "account:42", concurrencyLimit: 2, fairnessKey: "tenant:acme" });
    expect(usageErrorOf(["submit", "echo", "--fairness-weight", "3"])).toBe(
      "submit: --fairness-weight goes with --fairness-key KEY",
    );
    expect(usageErrorOf(["submit", "echo", "--fairness-key", "tenant acme"])).toBe(
      'submit: --fairness-key must be 1 to 128 letters, digits or _ . : @ / = + - (got "tenant acme")',
    );
    expect(usageErrorOf(["submit", "echo", "--fairness-key", ""])).toContain("--fairness-key must be 1 to 128");
    expect(usageErrorOf(["submit", "echo", "--fairness-key", "k".repeat(129)])).toContain(
      "--fairness-key must be 1 to 128",
    );
    for (const weight of ["0", "1001", "1.5", "", " ", "three"]) {
      expect(usageErrorOf(["submit", "echo", "--fairness-key", "t", "--fairness-weight", weight])).toBe(
        `submit: --fairness-weight must be a whole number from 1 to 1000 (got "${weight}")`,
      );
    }
    expect(
      parseCommandLine(["submit", "echo", "--fairness-key", "k".repeat(128), "--fairness-weight", "1000"]),
    ).toMatchObject({ fairness: { weight: 1000 } });
  });

  test("workers [ls] lists; workers quiet|resume <id> name one worker; mistakes are named", () => {
    expect(parseCommandLine(["workers"])).toMatchObject({ command: "workers" });
    expect(parseCommandLine(["workers", "ls"])).toMatchObject({ command: "workers" });
    expect(parseCommandLine(["workers", "quiet", "pod-0:1"])).toMatchObject({
      command: "workers-quiet",
      workerId: "pod-0:1",
    });
    expect(parseCommandLine(["workers", "resume", "pod-0:1", "--json"])).toMatchObject({
      command: "workers-resume",
      workerId: "pod-0:1",
      globals: { json: true },
    });
    expect(usageErrorOf(["workers", "quiet"])).toMatch(/^workers quiet: missing <worker id>/);
    expect(usageErrorOf(["workers", "stop", "pod-0:1"])).toMatch(
      /^workers: unknown action "stop" \(ls, quiet or resume\)/,
    );
    expect(usageErrorOf(["workers", "ls", "extra"])).toMatch(/^workers/);
  });

  test("limits ls|set|clear: --global-concurrency and --rate as the workers' settings read them; mistakes are named", () => {
    expect(parseCommandLine(["limits", "ls"])).toMatchObject({ command: "limits", action: "ls" });
    expect(parseCommandLine(["limits", "clear", "sleep"])).toMatchObject({ action: "clear", type: "sleep" });
    expect(parseCommandLine(["limits", "pause", "sleep"])).toMatchObject({ action: "pause", type: "sleep" });
    expect(parseCommandLine(["limits", "resume", "sleep"])).toMatchObject({ action: "resume", type: "sleep" });
    expect(usageErrorOf(["limits", "pause"])).toMatch(/^limits pause: missing <type>/);
    expect(parseCommandLine(["limits", "set", "sleep", "--global-concurrency", "3", "--rate", "120/m:10"])).toEqual(
      expect.objectContaining({
        action: "set",
        type: "sleep",
        globalConcurrency: 3,
        rate: { perSecond: 2, burst: 10 },
      }),
    );
    expect(parseCommandLine(["limits", "set", "echo", "--rate", "0.5/s"])).toMatchObject({
      rate: { perSecond: 0.5, burst: 1 },
    });
    expect(parseCommandLine(["limits", "set", "sleep", "--paused"])).toEqual(
      expect.objectContaining({ action: "set", type: "sleep", paused: true }),
    );
    expect(usageErrorOf(["limits", "set", "sleep"])).toBe(
      "limits set: give --global-concurrency N, --rate N/UNIT, --paused, or several (to remove them: limits clear)",
    );
    expect(usageErrorOf(["limits", "set", "sleep", "--global-concurrency", "0"])).toMatch(
      /^--global-concurrency must be a whole number from 1 to 10000/,
    );
    for (const bad of ["10", "10/d", "0/s", "fast"]) {
      expect(usageErrorOf(["limits", "set", "sleep", `--rate=${bad}`])).toMatch(/^--rate must be N\/s, N\/m or N\/h/);
    }
    expect(usageErrorOf(["limits", "bump"])).toMatch(/^limits: unknown action "bump"/);
    expect(usageErrorOf(["limits"])).toMatch(/^limits: missing action/);
  });

  test("cancel --all takes ls's filter flags (at least one); without --all they are refused", () => {
    const now = Date.parse("2026-12-06T12:00:00.000Z");
    expect(
      parseCommandLine(["cancel", "--all", "--type", "echo", "--state", "pending", "--reason", "x"], {}, now),
    ).toEqual(
      expect.objectContaining({
        command: "cancel-all",
        filter: { type: "echo", state: TaskState.PENDING },
        reason: "x",
        dryRun: false,
      }),
    );
    expect(parseCommandLine(["cancel", "--all", "--type", "echo", "--dry-run"], {}, now)).toMatchObject({
      command: "cancel-all",
      dryRun: true,
    });
    expect(usageErrorOf(["cancel", "some-id", "--dry-run"])).toMatch(/^cancel: --dry-run goes with --all/);
    expect(parseCommandLine(["cancel", "--all", "--until", "now"], {}, now)).toMatchObject({
      filter: { until: new Date(now) },
    });
    expect(usageErrorOf(["cancel", "--all"])).toMatch(/^cancel --all needs a filter/);
    expect(usageErrorOf(["cancel", "--all", "--type", "echo", "some-id"])).toMatch(
      /^cancel --all: unexpected argument/,
    );
    expect(usageErrorOf(["cancel", "some-id", "--type", "echo"])).toMatch(/need --all$/);
    expect(parseCommandLine(["cancel", "some-id"])).toMatchObject({
      command: "cancel",
      taskId: "some-id",
      children: false,
    });
    expect(parseCommandLine(["cancel", "some-id", "--children"])).toMatchObject({ taskId: "some-id", children: true });
    expect(usageErrorOf(["cancel", "--all", "--type", "echo", "--children"])).toMatch(
      /^cancel: --children goes with one task's id, not --all/,
    );
  });

  test("schedule add|ls|rm: the cron is one argument; task options as for submit; mistakes are named", () => {
    expect(parseCommandLine(["schedule", "ls"])).toMatchObject({ command: "schedule", action: "ls" });
    expect(parseCommandLine(["schedule", "rm", "nightly"])).toMatchObject({ action: "rm", id: "nightly" });
    expect(parseCommandLine(["schedule", "pause", "nightly"])).toMatchObject({ action: "pause", id: "nightly" });
    expect(parseCommandLine(["schedule", "resume", "nightly"])).toMatchObject({ action: "resume", id: "nightly" });
    expect(parseCommandLine(["schedule", "run", "nightly"])).toMatchObject({ action: "run", id: "nightly" });
    expect(parseCommandLine(["schedule", "add", "n", "* * * * *", "echo"])).toMatchObject({ overlap: "allow" });
    expect(parseCommandLine(["schedule", "add", "n", "* * * * *", "echo", "--overlap", "skip"])).toMatchObject({
      overlap: "skip",
    });
    expect(parseCommandLine(["schedule", "add", "n", "* * * * *", "echo", "--starting-deadline", "10m"])).toMatchObject(
      { startingDeadlineMs: 600_000 },
    );
    expect(
      parseCommandLine(["schedule", "add", "n", "* * * * *", "echo", "--succeeded-retention", "1h"]),
    ).toMatchObject({ succeededRetentionMs: 3_600_000 });
    expect(
      parseCommandLine([
        "schedule",
        "add",
        "n",
        "* * * * *",
        "echo",
        "--concurrency-key",
        "account:42",
        "--concurrency-limit",
        "1",
      ]),
    ).toMatchObject({ concurrency: { key: "account:42", limit: 1 } });
    expect(usageErrorOf(["schedule", "add", "n", "* * * * *", "echo", "--concurrency-key", "account:42"])).toBe(
      "schedule add: --concurrency-key goes with --concurrency-limit N",
    );
    expect(
      parseCommandLine([
        "schedule",
        "add",
        "n",
        "* * * * *",
        "echo",
        "--fairness-key",
        "tenant:acme",
        "--fairness-weight",
        "2",
      ]),
    ).toMatchObject({ fairness: { key: "tenant:acme", weight: 2 } });
    expect(parseCommandLine(["schedule", "add", "n", "* * * * *", "echo", "--fairness-key", "t"])).toMatchObject({
      fairness: { key: "t" },
    });
    expect(usageErrorOf(["schedule", "add", "n", "* * * * *", "echo", "--fairness-weight", "2"])).toBe(
      "schedule add: --fairness-weight goes with --fairness-key KEY",
    );
    expect(
      usageErrorOf(["schedule", "add", "n", "* * * * *", "echo", "--fairness-key", "t", "--fairness-weight", "0"]),
    ).toBe('schedule add: --fairness-weight must be a whole number from 1 to 1000 (got "0")');
    expect(
      parseCommandLine([
        "schedule",
        "add",
        "n",
        "@every 90m",
        "echo",
        "--start-at",
        "2027-01-01T00:00:00Z",
        "--end-at",
        "2027-02-01T00:00:00Z",
        "--max-runs",
        "10",
      ]),
    ).toMatchObject({
      cron: "@every 90m",
      startAt: new Date("2027-01-01T00:00:00Z"),
      endAt: new Date("2027-02-01T00:00:00Z"),
      maxRuns: 10,
    });
    expect(usageErrorOf(["schedule", "add", "n", "* * * * *", "echo", "--end-at", "tomorrow"])).toBe(
      '--end-at must be an ISO time such as 2026-01-31T12:00:00Z (got "tomorrow")',
    );
    expect(usageErrorOf(["schedule", "add", "n", "* * * * *", "echo", "--max-runs", "0"])).toBe(
      '--max-runs must be a whole number from 1 to 1000000 (got "0")',
    );
    expect(usageErrorOf(["schedule", "add", "n", "* * * * *", "echo", "--starting-deadline", "soon"])).toBe(
      '--starting-deadline must be a duration like 30s, 15m, 2h, 1d (got "soon")',
    );
    expect(usageErrorOf(["schedule", "add", "n", "* * * * *", "echo", "--overlap", "never"])).toBe(
      'schedule add: --overlap is allow or skip (got "never")',
    );
    expect(
      parseCommandLine([
        "schedule",
        "add",
        "nightly",
        "0 2 * * *",
        "checksum",
        "--timezone",
        "Europe/Berlin",
        "--payload",
        '{"data":"x","rounds":5}',
        "--priority",
        "low",
        "--meta",
        "team=ops",
        "--max-attempts",
        "1",
        "--replace",
      ]),
    ).toMatchObject({
      action: "add",
      id: "nightly",
      cron: "0 2 * * *",
      type: "checksum",
      timezone: "Europe/Berlin",
      payload: { data: "x", rounds: 5 },
      priority: Priority.LOW,
      metadata: { team: "ops" },
      maxAttempts: 1,
      replace: true,
    });
    expect(usageErrorOf(["schedule"])).toMatch(/^schedule: missing action \(add, ls, rm, pause, resume or run\)/);
    expect(usageErrorOf(["schedule", "stop"])).toMatch(/^schedule: unknown action "stop"/);
    expect(usageErrorOf(["schedule", "pause"])).toMatch(/^schedule pause: missing <id>/);
    expect(usageErrorOf(["schedule", "add", "nightly", "0 2 * * *"])).toMatch(/^schedule add: missing <type>/);
    expect(usageErrorOf(["schedule", "rm"])).toMatch(/^schedule rm: missing <id>/);
    expect(usageErrorOf(["schedule", "ls", "extra"])).toMatch(/^schedule ls: unexpected argument "extra"/);
  });

  test("submit-batch: one file (- for standard input), --batch-size 1 to 10000 (100 by default), --retries", () => {
    expect(parseCommandLine(["submit-batch", "tasks.jsonl"])).toMatchObject({
      command: "submit-batch",
      file: "tasks.jsonl",
      batchSize: 100,
      retries: 4,
    });
    expect(parseCommandLine(["submit-batch", "-", "--batch-size", "500", "--retries", "0"])).toMatchObject({
      file: "-",
      batchSize: 500,
      retries: 0,
    });
    expect(usageErrorOf(["submit-batch"])).toContain("submit-batch: missing <file>");
    expect(usageErrorOf(["submit-batch", "a", "b"])).toContain('unexpected argument "b"');
    expect(usageErrorOf(["submit-batch", "a", "--batch-size", "0"])).toContain(
      '--batch-size must be a whole number from 1 to 10000 (got "0")',
    );
  });

  test("submit-batch lines: protobuf JSON of SubmitTaskRequest, blank lines skipped, a key made for a line without", () => {
    const lines = parseBatchLines(
      '{"type":"sleep","payload":{"ms":5},"priority":"PRIORITY_HIGH","delay":"30s","maxAttempts":1}\n\n' +
        '{"type":"echo","idempotencyKey":"mine"}\n',
    );
    expect(lines.map((l) => l.line)).toEqual([1, 3]);
    const [sleep, echo] = lines.map((l) => l.request);
    expect(sleep).toMatchObject({ type: "sleep", priority: Priority.HIGH, maxAttempts: 1, payload: { ms: 5 } });
    expect(sleep?.schedule).toMatchObject({ case: "delay", value: { seconds: 30n } });
    expect(sleep?.idempotencyKey).toMatch(/^taskctl-/);
    expect(lines[0]?.generatedKey).toBe(true);
    expect(echo?.idempotencyKey).toBe("mine");
    expect(lines[1]?.generatedKey).toBe(false);
    expect(() => parseBatchLines('{"type":"echo"}\n{"type":"echo","priority":"URGENT"}')).toThrow(
      /^line 2: not a task/,
    );
    expect(() => parseBatchLines("not json")).toThrow(/^line 1: not a task/);
    expect(() => parseBatchLines("\n  \n")).toThrow("the file holds no tasks");
    // A line's concurrency key and limit are SubmitTaskRequest's fields: carried as they are.
    const [keyed] = parseBatchLines('{"type":"echo","concurrencyKey":"tenant-7","concurrencyLimit":2}');
    expect(keyed?.request).toMatchObject({ concurrencyKey: "tenant-7", concurrencyLimit: 2 });
    // So are its fairness key and weight.
    const [fair] = parseBatchLines('{"type":"echo","fairnessKey":"tenant-7","fairnessWeight":3}');
    expect(fair?.request).toMatchObject({ fairnessKey: "tenant-7", fairnessWeight: 3 });
  });

  test("graph: one task id, --depth 1 to 20 (5 by default)", () => {
    expect(parseCommandLine(["graph", "t1"])).toMatchObject({ command: "graph", taskId: "t1", depth: 5 });
    expect(parseCommandLine(["graph", "t1", "--depth", "2"])).toMatchObject({ depth: 2 });
    expect(usageErrorOf(["graph"])).toContain("graph: missing <id>");
    expect(usageErrorOf(["graph", "t1", "--depth", "0"])).toContain("--depth");
    expect(usageErrorOf(["graph", "t1", "--depth", "21"])).toContain("--depth");
  });

  test("submit-batch lines: dependsOnBatchItems name earlier tasks of the file, a later or own place is refused", () => {
    const lines = parseBatchLines('{"type":"echo"}\n\n{"type":"echo","dependsOnBatchItems":[0]}\n');
    expect(lines[1]?.after).toEqual([0]);
    expect(lines[1]?.request.dependsOnBatchItems).toEqual([]);
    expect(() => parseBatchLines('{"type":"echo"}\n{"type":"echo","dependsOnBatchItems":[0,1]}')).toThrow(
      "line 2: dependsOnBatchItems[1]: 1 is not an earlier task of the file (this one is 1; tasks count from 0, blank lines aside)",
    );
  });

  test("submit-batch calls: earlier tasks become places in the call, or ids once accepted; a refused one refuses", () => {
    const lines = parseBatchLines(
      [
        '{"type":"echo"}',
        '{"type":"echo","dependsOnBatchItems":[0]}',
        '{"type":"nope"}',
        '{"type":"echo","dependsOn":["00000000-0000-4000-8000-000000000001"],"dependsOnBatchItems":[1,0]}',
        '{"type":"echo","dependsOnBatchItems":[2]}',
        '{"type":"echo","dependsOnBatchItems":[4]}',
      ].join("\n"),
    );
    const outcomes = new Map<number, LineOutcome>([
      [1, { line: 1, taskId: "t1", deduplicated: false }],
      [3, { line: 3, error: { code: Code.InvalidArgument, message: "type: unknown task type" } }],
    ]);
    // Line 1 and 3 were answered by an earlier call; lines 2, 4, 5 and 6 go now.
    const call = prepareCall(lines.slice(1, 2).concat(lines.slice(3)), lines, outcomes);
    expect(call.send.map((l) => l.line)).toEqual([2, 4]);
    expect(call.requests.map((r) => [r.dependsOn, r.dependsOnBatchItems])).toEqual([
      [["t1"], []],
      [["00000000-0000-4000-8000-000000000001", "t1"], [0]],
    ]);
    expect(call.refused).toEqual([
      {
        line: 5,
        error: {
          code: Code.FailedPrecondition,
          message:
            "dependsOnBatchItems[0]: the task on line 3 was refused (type: unknown task type), so this one could never run",
        },
      },
      {
        line: 6,
        error: { code: Code.FailedPrecondition, message: "dependsOnBatchItems[0]: the task on line 5 was not sent" },
      },
    ]);
    // A dependency not attempted (UNAVAILABLE after its retries) leaves its dependents not attempted.
    outcomes.set(1, { line: 1, error: { code: Code.Unavailable, message: "Redis did not answer" } });
    expect(prepareCall(lines.slice(1, 2), lines, outcomes).refused).toEqual([
      {
        line: 2,
        error: {
          code: Code.Unavailable,
          message: "not attempted: dependsOnBatchItems[0]: the task on line 1 was not accepted (Redis did not answer)",
        },
      },
    ]);
  });

  test("a bad priority names the flag and the allowed values", () => {
    expect(usageErrorOf(["submit", "echo", "--priority", "urgent"])).toBe(
      '--priority must be one of high, medium, low (got "urgent")',
    );
  });

  test("bad JSON payloads name the problem", () => {
    expect(usageErrorOf(["submit", "echo", "--payload", "{ms:1}"])).toMatch(/^--payload is not valid JSON: /);
    expect(usageErrorOf(["submit", "echo", "--payload", "[1,2]"])).toMatch(/--payload must be a JSON object.*an array/);
    expect(usageErrorOf(["submit", "echo", "--payload", "null"])).toMatch(/got null/);
  });

  test("malformed --meta, unknown flags, missing and extra arguments", () => {
    expect(usageErrorOf(["submit", "echo", "--meta", "novalue"])).toMatch(/--meta must look like key=value/);
    expect(usageErrorOf(["submit", "echo", "--frobnicate"])).toMatch(/^submit: unknown option --frobnicate/);
    expect(usageErrorOf(["submit"])).toMatch(/^submit: missing <type>/);
    expect(usageErrorOf(["get", "a", "b"])).toMatch(/^get: unexpected argument "b"/);
    expect(usageErrorOf(["watch"])).toMatch(/watch needs at least one task id/);
    expect(usageErrorOf(["launch"])).toMatch(/^unknown command "launch"/);
    expect(usageErrorOf(["demo", "--count", "0"])).toMatch(/--count must be a whole number from 1 to 1000/);
  });

  test("--help is per command", () => {
    const help = parseCommandLine(["cancel", "--help"]);
    expect(help.command).toBe("help");
    expect(help.command === "help" && help.text).toMatch(/taskctl cancel <id> \[--reason R\]/);
    expect(help.command === "help" && help.text).toMatch(/4 {2}server unavailable/);
  });

  test("watch deduplicates ids", () => {
    expect(parseCommandLine(["watch", "a", "b", "a"])).toMatchObject({ taskIds: ["a", "b"] });
  });

  test("normaliseAddr accepts host:port and URLs", () => {
    expect(normaliseAddr("localhost:50051")).toBe("http://localhost:50051");
    expect(normaliseAddr("https://gw.example:443/")).toBe("https://gw.example:443");
  });
});

describe("run() on usage errors", () => {
  test("exits 2 and prints the problem on stderr", async () => {
    let stderr = "";
    const io = { stdout: { write: () => true }, stderr: { write: (text: string) => (stderr += text) }, env: {} };
    expect(await run(["submit", "echo", "--payload", "{"], io)).toBe(ExitCode.Usage);
    expect(stderr).toMatch(/^taskctl: --payload is not valid JSON/);
    stderr = "";
    expect(await run(["submit", "echo", "--concurrency-limit", "2"], io)).toBe(ExitCode.Usage);
    expect(stderr).toMatch(/^taskctl: submit: --concurrency-limit goes with --concurrency-key KEY/);
    stderr = "";
    expect(await run(["submit", "echo", "--fairness-weight", "2"], io)).toBe(ExitCode.Usage);
    expect(stderr).toMatch(/^taskctl: submit: --fairness-weight goes with --fairness-key KEY/);
  });
});
