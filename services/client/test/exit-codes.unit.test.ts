import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, test } from "vitest";
import { CliError, describeError, ExitCode, UsageError } from "../src/exit-codes.js";

const ADDR = "http://127.0.0.1:50051";

function refused(): Error {
  return Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:50051"), { code: "ECONNREFUSED" });
}

describe("describeError", () => {
  test.each([
    [new ConnectError("unknown task type", Code.InvalidArgument), ExitCode.Usage],
    [new ConnectError("task x", Code.NotFound), ExitCode.NotFound],
    [new ConnectError("redis down", Code.Unavailable), ExitCode.Unavailable],
    [new ConnectError("slow", Code.DeadlineExceeded), ExitCode.Unavailable],
    [new ConnectError("already finished", Code.FailedPrecondition), ExitCode.ServerError],
    [new ConnectError("bad key", Code.Unauthenticated), ExitCode.ServerError],
    [new ConnectError("oops", Code.Internal), ExitCode.ServerError],
    [new UsageError("bad flag"), ExitCode.Usage],
    [new CliError("gone", ExitCode.NotFound), ExitCode.NotFound],
    [new Error("weird"), ExitCode.ServerError],
  ])("%s → %d", (error, exitCode) => {
    expect(describeError(error, ADDR).exitCode).toBe(exitCode);
  });

  test("a refused connection gives the clear message", () => {
    const error = new ConnectError(
      "[unavailable] connect ECONNREFUSED",
      Code.Unavailable,
      undefined,
      undefined,
      refused(),
    );
    expect(describeError(error, ADDR)).toEqual({
      exitCode: ExitCode.Unavailable,
      message: "cannot reach the gateway at http://127.0.0.1:50051: is the stack running? (pnpm start)",
    });
  });

  test("FAILED_PRECONDITION shows the server's reason; UNAUTHENTICATED says how to authenticate", () => {
    expect(describeError(new ConnectError("task x is already SUCCEEDED", Code.FailedPrecondition), ADDR).message).toBe(
      "task x is already SUCCEEDED",
    );
    expect(describeError(new ConnectError("missing key", Code.Unauthenticated), ADDR).message).toMatch(
      /--api-key or set TASKCTL_API_KEY/,
    );
  });

  test("UNAVAILABLE from a reachable gateway keeps the server's reason", () => {
    expect(describeError(new ConnectError("redis is down", Code.Unavailable), ADDR).message).toBe(
      "the gateway at http://127.0.0.1:50051 is unavailable: redis is down",
    );
  });
});

describe("demo mix", async () => {
  const { demoTasks } = await import("../src/commands/demo.js");
  test("has exactly one fail and every other type, sleeps within 300-1500 ms", () => {
    const tasks = demoTasks(12, () => 0.99999);
    expect(tasks).toHaveLength(12);
    expect(tasks.filter((task) => task.type === "fail")).toHaveLength(1);
    expect(new Set(tasks.map((task) => task.type))).toEqual(new Set(["echo", "sleep", "checksum", "flaky", "fail"]));
    for (const task of tasks.filter((t) => t.type === "sleep")) expect(task.payload.ms).toBe(1500);
    expect(demoTasks(12, () => 0).find((t) => t.type === "sleep")?.payload.ms).toBe(300);
    expect(demoTasks(1).map((task) => task.type)).toEqual(["fail"]);
  });
});
