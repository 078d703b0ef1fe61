import { Priority, TaskState } from "@tm/proto";
import { describe, expect, test } from "vitest";
import { parseTime } from "../src/admin-args.js";
import { parseCommandLine } from "../src/args.js";
import { ExitCode, UsageError } from "../src/exit-codes.js";
import { run } from "../src/run.js";

const NOW = Date.parse("2026-03-01T12:00:00Z");

function usageErrorOf(argv: string[]): string {
  try {
    parseCommandLine(argv, {}, NOW);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error(`expected a usage error for ${argv.join(" ")}`);
}

describe("operator commands", () => {
  test("ls with every filter", () => {
    const invocation = parseCommandLine(
      [
        "ls",
        "--state",
        "FAILED",
        "--type",
        "echo",
        "--priority",
        "high",
        "--since",
        "1h",
        "--until",
        "2026-03-01T11:30:00Z",
        "--query",
        "team-a",
        "--limit",
        "20",
        "--page-token",
        "abc",
        "--json",
      ],
      {},
      NOW,
    );
    expect(invocation).toEqual({
      command: "ls",
      globals: expect.objectContaining({ json: true }),
      filter: {
        state: TaskState.FAILED,
        type: "echo",
        priority: Priority.HIGH,
        since: new Date("2026-03-01T11:00:00Z"),
        until: new Date("2026-03-01T11:30:00Z"),
        query: "team-a",
      },
      limit: 20,
      pageToken: "abc",
    });
  });

  test("ls defaults: no filter, 50 per page", () => {
    expect(parseCommandLine(["ls"], {}, NOW)).toMatchObject({ command: "ls", filter: {}, limit: 50 });
  });

  test("--parent: a task's children, for ls, cancel --all and requeue --all-stalled alike", () => {
    const parent = "0b6f4c1e-7d2a-4c55-9a43-2f1b8e6d9c10";
    expect(parseCommandLine(["ls", "--parent", parent, "--state", "failed"], {}, NOW)).toMatchObject({
      command: "ls",
      filter: { parentTaskId: parent, state: TaskState.FAILED },
    });
    expect(parseCommandLine(["cancel", "--all", "--parent", parent], {}, NOW)).toMatchObject({
      command: "cancel-all",
      filter: { parentTaskId: parent },
    });
    expect(parseCommandLine(["requeue", "--all-stalled", "--parent", parent], {}, NOW)).toMatchObject({
      command: "requeue-stalled",
      filter: { parentTaskId: parent },
    });
    expect(usageErrorOf(["cancel", parent, "--parent", parent])).toContain("--parent need --all");
  });

  test("relative and absolute times", () => {
    expect(parseTime("--since", "30s", NOW).toISOString()).toBe("2026-03-01T11:59:30.000Z");
    expect(parseTime("--since", "15m", NOW).toISOString()).toBe("2026-03-01T11:45:00.000Z");
    expect(parseTime("--since", "2d", NOW).toISOString()).toBe("2026-02-27T12:00:00.000Z");
    expect(parseTime("--since", "2026-01-31", NOW).toISOString()).toBe("2026-01-31T00:00:00.000Z");
  });

  test("bad ls values name the flag", () => {
    expect(usageErrorOf(["ls", "--state", "done"])).toMatch(/^--state must be one of pending, .*got "done"/);
    expect(usageErrorOf(["ls", "--priority", "urgent"])).toMatch(/^--priority must be one of/);
    expect(usageErrorOf(["ls", "--since", "yesterday"])).toMatch(/^--since must be an ISO time/);
    expect(usageErrorOf(["ls", "--since", "1h", "--until", "2h"])).toBe("--since must be earlier than --until");
    expect(usageErrorOf(["ls", "--limit", "501"])).toMatch(/^--limit must be a whole number from 1 to 500/);
    expect(usageErrorOf(["ls", "extra"])).toMatch(/^ls: unexpected argument "extra"/);
  });

  test("history needs exactly one id", () => {
    expect(parseCommandLine(["history", "t1"], {}, NOW)).toMatchObject({ command: "history", taskId: "t1" });
    expect(usageErrorOf(["history"])).toMatch(/^history: missing <id>/);
  });

  test("stats takes no arguments", () => {
    expect(parseCommandLine(["stats"], {}, NOW)).toMatchObject({ command: "stats" });
    expect(usageErrorOf(["stats", "now"])).toMatch(/^stats: unexpected argument/);
  });

  test("concurrency <key> [--owner CALLER]: the key checked as submit checks it; a missing one is a usage error", async () => {
    expect(parseCommandLine(["concurrency", "account:42"], {}, NOW)).toEqual({
      command: "concurrency",
      globals: { addr: "http://127.0.0.1:50051", json: false },
      key: "account:42",
    });
    expect(parseCommandLine(["concurrency", "tenant-7", "--owner", "shop", "--json"], {}, NOW)).toMatchObject({
      command: "concurrency",
      key: "tenant-7",
      owner: "shop",
      globals: { json: true },
    });
    expect(usageErrorOf(["concurrency"])).toMatch(/^concurrency: missing <key>\n\nUsage: taskctl concurrency <key>/);
    expect(usageErrorOf(["concurrency", "a", "b"])).toMatch(/^concurrency: unexpected argument "b"/);
    expect(usageErrorOf(["concurrency", ""])).toBe("concurrency: <key> must not be empty");
    expect(usageErrorOf(["concurrency", "two words"])).toMatch(/^concurrency: <key> must be 1 to 128 letters/);
    expect(usageErrorOf(["concurrency", "k".repeat(129)])).toMatch(/^concurrency: <key> must be 1 to 128 letters/);
    expect(usageErrorOf(["concurrency", "k", "--owner", ""])).toBe("concurrency: --owner must not be empty");
    expect(usageErrorOf(["concurrency", "k", "--limit", "5"])).toMatch(/^concurrency: unknown option --limit/);
    // The same exit code as every usage error, before any call.
    let stderr = "";
    const io = { stdout: { write: () => true }, stderr: { write: (text: string) => (stderr += text) }, env: {} };
    expect(await run(["concurrency"], io)).toBe(ExitCode.Usage);
    expect(stderr).toMatch(/^taskctl: concurrency: missing <key>/);
  });

  test("fairness <type>: one task type (the gateway checks it is known); a missing one is a usage error", async () => {
    expect(parseCommandLine(["fairness", "sleep"], {}, NOW)).toEqual({
      command: "fairness",
      globals: { addr: "http://127.0.0.1:50051", json: false },
      taskType: "sleep",
    });
    expect(parseCommandLine(["fairness", "sleep", "--json"], {}, NOW)).toMatchObject({
      command: "fairness",
      taskType: "sleep",
      globals: { json: true },
    });
    expect(usageErrorOf(["fairness"])).toMatch(/^fairness: missing <type>\n\nUsage: taskctl fairness <type>/);
    expect(usageErrorOf(["fairness", "sleep", "echo"])).toMatch(/^fairness: unexpected argument "echo"/);
    expect(usageErrorOf(["fairness", " "])).toBe("fairness: <type> must not be empty");
    expect(usageErrorOf(["fairness", "sleep", "--owner", "shop"])).toMatch(/^fairness: unknown option --owner/);
    expect(parseCommandLine(["fairness", "--help"], {}, NOW)).toMatchObject({
      command: "help",
      text: expect.stringMatching(/^Usage: taskctl fairness <type>\n/),
    });
    let stderr = "";
    const io = { stdout: { write: () => true }, stderr: { write: (text: string) => (stderr += text) }, env: {} };
    expect(await run(["fairness"], io)).toBe(ExitCode.Usage);
    expect(stderr).toMatch(/^taskctl: fairness: missing <type>/);
  });

  test("dlq ls and dlq replay", () => {
    expect(parseCommandLine(["dlq", "ls", "--limit", "5"], {}, NOW)).toMatchObject({
      command: "dlq",
      action: "ls",
      limit: 5,
    });
    expect(parseCommandLine(["dlq", "replay", "TASKS:1", "TASKS:2", "TASKS:1"], {}, NOW)).toMatchObject({
      action: "replay",
      ids: ["TASKS:1", "TASKS:2"],
      all: false,
    });
    expect(parseCommandLine(["dlq", "replay", "--all"], {}, NOW)).toMatchObject({
      action: "replay",
      ids: [],
      all: true,
    });
    expect(usageErrorOf(["dlq"])).toMatch(/^dlq: missing action/);
    expect(usageErrorOf(["dlq", "purge"])).toMatch(/^dlq: unknown action "purge"/);
    expect(usageErrorOf(["dlq", "replay"])).toMatch(/^dlq replay: give dead letter ids or --all/);
    expect(usageErrorOf(["dlq", "replay", "TASKS:1", "--all"])).toBe(
      "dlq replay: give dead letter ids or --all, not both",
    );
    expect(usageErrorOf(["dlq", "ls", "--all"])).toBe("dlq ls: --all applies to dlq replay and dlq discard");
    expect(parseCommandLine(["dlq", "discard", "TASKS:3", "TASKS:3"], {}, NOW)).toMatchObject({
      action: "discard",
      ids: ["TASKS:3"],
      all: false,
    });
    expect(parseCommandLine(["dlq", "discard", "--all"], {}, NOW)).toMatchObject({ action: "discard", all: true });
    expect(usageErrorOf(["dlq", "discard"])).toMatch(/^dlq discard: give dead letter ids or --all/);
    expect(usageErrorOf(["dlq", "discard", "TASKS:1", "--all"])).toBe(
      "dlq discard: give dead letter ids or --all, not both",
    );
  });

  test("pause and resume name one queue: high, medium or low", () => {
    expect(parseCommandLine(["pause", "HIGH"], {}, NOW)).toMatchObject({ command: "pause", priority: Priority.HIGH });
    expect(parseCommandLine(["resume", "low"], {}, NOW)).toMatchObject({ command: "resume", priority: Priority.LOW });
    expect(usageErrorOf(["pause"])).toMatch(/^pause: missing <priority>/);
    expect(usageErrorOf(["pause", "urgent"])).toBe('pause: the queue is high, medium or low (got "urgent")');
    expect(usageErrorOf(["resume", "high", "low"])).toMatch(/^resume: unexpected argument "low"/);
  });

  test("dlq --reason, --subject, --task, --type and --parent choose the letters listed, or acted on with --all (not with ids)", () => {
    expect(parseCommandLine(["dlq", "ls", "--reason", "invalid", "--subject", "tasks.ingest"], {}, NOW)).toMatchObject({
      action: "ls",
      filter: { reason: "invalid", subject: "tasks.ingest" },
    });
    expect(parseCommandLine(["dlq", "ls"], {}, NOW)).toMatchObject({ action: "ls", filter: {} });
    expect(parseCommandLine(["dlq", "discard", "--all", "--reason", "invalid"], {}, NOW)).toMatchObject({
      action: "discard",
      all: true,
      filter: { reason: "invalid" },
    });
    const task = "0b7d7a52-6c1f-4f57-8a37-3d2f1e0c9b8a";
    expect(parseCommandLine(["dlq", "replay", "--all", "--task", task], {}, NOW)).toMatchObject({
      action: "replay",
      filter: { taskId: task },
    });
    expect(usageErrorOf(["dlq", "replay", "TASKS:1", "--reason", "exhausted"])).toBe(
      "dlq replay: --reason, --subject, --task, --type and --parent choose letters with --all, not with ids",
    );
    // A fan-out's failures: the letters of one parent's children, of one type.
    expect(parseCommandLine(["dlq", "replay", "--all", "--parent", task, "--type", "resize"], {}, NOW)).toMatchObject({
      action: "replay",
      all: true,
      filter: { parentTaskId: task, type: "resize" },
    });
    expect(parseCommandLine(["dlq", "ls", "--parent", task], {}, NOW)).toMatchObject({
      filter: { parentTaskId: task },
    });
    expect(usageErrorOf(["dlq", "discard", "TASKS:1", "--parent", task])).toMatch(
      /choose letters with --all, not with ids/,
    );
  });

  test("ls --stalled-for: unfinished tasks unchanged for a duration", () => {
    expect(parseCommandLine(["ls", "--stalled-for", "15m"], {}, NOW)).toMatchObject({
      filter: { stalledForSeconds: 900 },
    });
    expect(usageErrorOf(["ls", "--stalled-for", "soon"])).toMatch(/^--stalled-for must be 0, seconds, or a duration/);
  });

  test("ls --stalled: the tasks counted as stalled, with the other filters; not with a finished state", () => {
    expect(parseCommandLine(["ls", "--stalled", "--priority", "high"], {}, NOW)).toMatchObject({
      filter: { stalled: true, priority: Priority.HIGH },
    });
    expect(parseCommandLine(["ls"], {}, NOW)).not.toHaveProperty("filter.stalled");
    expect(usageErrorOf(["ls", "--stalled", "--state", "failed"])).toBe(
      "--stalled lists unfinished tasks: drop --state or name an unfinished state",
    );
  });

  test("requeue: ids once each, --stalled-for as seconds or a duration", () => {
    expect(parseCommandLine(["requeue", "a", "b", "a"], {}, NOW)).toEqual({
      command: "requeue",
      globals: expect.anything(),
      taskIds: ["a", "b"],
    });
    for (const [text, seconds] of [
      ["0", 0],
      ["45", 45],
      ["90s", 90],
      ["15m", 900],
      ["2h", 7_200],
      ["7d", 604_800],
    ] as const) {
      expect(parseCommandLine(["requeue", "a", "--stalled-for", text], {}, NOW)).toMatchObject({
        stalledForSeconds: seconds,
      });
    }
    expect(usageErrorOf(["requeue"])).toMatch(/^requeue needs at least one task id/);
    for (const bad of ["-1", "1.5", "ten", "5y", "8d", ""]) {
      expect(usageErrorOf(["requeue", "a", `--stalled-for=${bad}`])).toBe(
        `--stalled-for must be 0, seconds, or a duration like 90s, 15m, 2h, at most 7d (got "${bad}")`,
      );
    }
  });

  test("requeue --all-stalled: no ids, the list's filters, the gateway's threshold unless --stalled-for", () => {
    expect(parseCommandLine(["requeue", "--all-stalled"], {}, NOW)).toEqual({
      command: "requeue-stalled",
      globals: expect.anything(),
      filter: { stalled: true },
    });
    expect(
      parseCommandLine(
        ["requeue", "--all-stalled", "--type", "resize", "--priority", "high", "--stalled-for", "1h"],
        {},
        NOW,
      ),
    ).toEqual({
      command: "requeue-stalled",
      globals: expect.anything(),
      filter: { stalled: true, type: "resize", priority: Priority.HIGH },
      stalledForSeconds: 3_600,
    });
    expect(usageErrorOf(["requeue", "a", "--all-stalled"])).toMatch(/^requeue --all-stalled: unexpected argument "a"/);
    expect(usageErrorOf(["requeue", "a", "--type", "resize"])).toBe(
      "requeue: --state, --type, --priority, --since, --until and --query need --all-stalled",
    );
    expect(usageErrorOf(["requeue", "--all-stalled", "--state", "failed"])).toBe(
      "requeue --all-stalled: stalled tasks are unfinished: drop --state or name an unfinished state",
    );
  });
});
