import { create } from "@bufbuild/protobuf";
import { DependencyPolicy, isLaterStatus, TaskSchema, TaskState } from "@tm/proto";
import { describe, expect, test } from "vitest";
import { describeTask } from "../src/commands/get.js";
import { viewModeFor } from "../src/live-view.js";
import { percentile, progressBar, renderSummary, renderTaskLine, summarise, type TaskView } from "../src/render.js";

const ESC = String.fromCharCode(27);
const stripAnsi = (text: string) => text.replace(new RegExp(`${ESC}\\[\\d+m`, "g"), "");

function view(overrides: Partial<TaskView> = {}): TaskView {
  return {
    taskId: "0123456789abcdef",
    label: "sleep",
    state: TaskState.RUNNING,
    progress: 40,
    attempt: 1,
    error: "",
    message: "",
    startedAt: 1_000,
    ...overrides,
  };
}

describe("progressBar", () => {
  test.each([
    [0, 10, "░░░░░░░░░░"],
    [50, 10, "█████░░░░░"],
    [100, 10, "██████████"],
    [33, 3, "█░░"],
    [-5, 4, "░░░░"],
    [250, 4, "████"],
    [Number.NaN, 4, "░░░░"],
  ])("%d%% in %d cells", (progress, width, expected) => {
    expect(progressBar(progress, width)).toBe(expected);
  });

  test("always exactly width cells", () => {
    for (let progress = 0; progress <= 100; progress += 7) expect([...progressBar(progress, 17)]).toHaveLength(17);
  });
});

describe("renderTaskLine", () => {
  test("a running task shows state, bar, percentage and attempt", () => {
    expect(renderTaskLine(view(), { barWidth: 10 })).toBe(
      "0123456789ab  sleep             RUNNING    ████░░░░░░  40%  attempt 1",
    );
  });

  test("a succeeded task shows a full bar even if the last progress report was lower", () => {
    expect(renderTaskLine(view({ state: TaskState.SUCCEEDED, progress: 90 }), { barWidth: 4 })).toContain(
      "SUCCEEDED  ████ 100%",
    );
  });

  test("a running task shows its last progress message on one line; a finished one does not", () => {
    expect(renderTaskLine(view({ message: "uploading\npart 7 " }), { barWidth: 10 })).toBe(
      "0123456789ab  sleep             RUNNING    ████░░░░░░  40%  attempt 1  uploading part 7",
    );
    expect(renderTaskLine(view({ state: TaskState.SUCCEEDED, message: "stale" }))).not.toContain("stale");
  });

  test("isLaterStatus orders by version, then by progress report", () => {
    const at = (version: number, progressReport = 0) => ({ version: BigInt(version), progressReport });
    expect(isLaterStatus(at(10), at(11))).toBe(true);
    expect(isLaterStatus(at(11, 5), at(10, 9))).toBe(false);
    expect(isLaterStatus(at(10, 1), at(10, 2))).toBe(true);
    expect(isLaterStatus(at(10, 2), at(10, 2))).toBe(false);
  });

  test("a failed task shows its error and attempt", () => {
    const line = renderTaskLine(view({ state: TaskState.FAILED, attempt: 5, error: "boom" }), { barWidth: 4 });
    expect(line).toMatch(/FAILED .*attempt 5 {2}boom$/);
  });

  test("colour wraps only the state word; maxWidth truncates", () => {
    const coloured = renderTaskLine(view({ state: TaskState.FAILED }), { colour: true });
    expect(coloured).toContain("\x1b[31mFAILED   \x1b[0m");
    expect(stripAnsi(coloured)).toBe(renderTaskLine(view({ state: TaskState.FAILED })));
    expect(renderTaskLine(view(), { maxWidth: 20 })).toHaveLength(20);
  });
});

describe("viewModeFor", () => {
  test("json wins, pipes get lines, a terminal too short for every task gets lines", () => {
    expect(viewModeFor({ write: () => true, isTTY: true }, true)).toBe("json");
    expect(viewModeFor({ write: () => true }, false)).toBe("lines");
    expect(viewModeFor({ write: () => true, isTTY: true, rows: 40 }, false, 12)).toBe("tty");
    expect(viewModeFor({ write: () => true, isTTY: true, rows: 10 }, false, 12)).toBe("lines");
  });
});

describe("summary", () => {
  test("percentile is nearest-rank", () => {
    expect(percentile([], 50)).toBeUndefined();
    expect(percentile([5, 1, 3], 50)).toBe(3);
    expect(percentile([1, 2, 3, 4], 50)).toBe(2);
    expect(percentile([1, 2, 3, 4], 100)).toBe(4);
  });

  test("counts states and times to terminal", () => {
    const summary = summarise([
      view({ state: TaskState.SUCCEEDED, endedAt: 1_500 }),
      view({ state: TaskState.SUCCEEDED, endedAt: 3_000 }),
      view({ state: TaskState.FAILED, endedAt: 2_000 }),
    ]);
    expect(summary).toEqual({ counts: { SUCCEEDED: 2, FAILED: 1 }, p50Ms: 1_000, maxMs: 2_000 });
    expect(renderSummary(summary)).toContain("time to terminal: p50 1.00 s, max 2.00 s");
    expect(renderSummary(summary)).toMatch(/SUCCEEDED +2\n/);
  });
});

describe("taskctl get", () => {
  test("a running task shows its last progress message beside the percent, and its details", () => {
    const lines = describeTask(
      create(TaskSchema, {
        taskId: "t",
        type: "import",
        status: {
          state: TaskState.RUNNING,
          progress: 40,
          attempt: 1,
          progressReport: 3,
          progressMessage: "uploading part 7",
          progressDetails: { part: 7, of: 12 },
        },
      }),
    ).split("\n");
    expect(lines).toContain("progress  40%  uploading part 7");
    expect(lines).toContain('details   {"part":7,"of":12}');
  });

  test("a failed task's error is its error; a cancelled task's is the reason it was cancelled", () => {
    const lineOf = (state: TaskState, error: string) =>
      describeTask(create(TaskSchema, { taskId: "t", type: "x", status: { state, attempt: 1, error } }))
        .split("\n")
        .find((line) => line.includes(error));
    expect(lineOf(TaskState.FAILED, "boom")).toBe("error     boom");
    expect(lineOf(TaskState.CANCELLED, "bad batch")).toBe("reason    bad batch");
  });

  test("a task that logged says how many lines and where to read them; one that did not, nothing", () => {
    expect(describeTask(create(TaskSchema, { taskId: "t", type: "x", logLines: 12 })).split("\n")).toContain(
      "logs      12 lines (taskctl logs t)",
    );
    expect(describeTask(create(TaskSchema, { taskId: "t", type: "x", logLines: 1 })).split("\n")).toContain(
      "logs      1 line (taskctl logs t)",
    );
    expect(describeTask(create(TaskSchema, { taskId: "t", type: "x" }))).not.toContain("logs");
  });

  test("a parent lists its children and how far its fan-out got, by state in the lifecycle's order", () => {
    const lines = describeTask(
      create(TaskSchema, {
        taskId: "t",
        type: "word-count-all",
        children: ["a", "b"],
        childrenTotal: 24,
        childrenByState: { FAILED: 2, SUCCEEDED: 20, RUNNING: 1, PENDING: 1 },
      }),
    ).split("\n");
    expect(lines).toContain("children  a, b and 22 more");
    expect(lines).toContain("          1 pending, 1 running, 20 succeeded, 2 failed");
    expect(lines).toContain(
      "          their dead letters: taskctl dlq ls --parent t (replay: dlq replay --all --parent)",
    );
    // None failed: no pointer to dead letters.
    const fine = describeTask(
      create(TaskSchema, {
        taskId: "t",
        type: "x",
        children: ["a"],
        childrenTotal: 1,
        childrenByState: { SUCCEEDED: 1 },
      }),
    );
    expect(fine).not.toContain("dead letters");
  });

  test("a task with dependencies says which, and how many it still waits for", () => {
    const base = { taskId: "t", type: "echo", dependsOn: ["a", "b"] };
    expect(describeTask(create(TaskSchema, { ...base, dependenciesUnfinished: 1 })).split("\n")).toContain(
      "after     a, b (waiting for 1)",
    );
    expect(describeTask(create(TaskSchema, base)).split("\n")).toContain("after     a, b");
    expect(
      describeTask(create(TaskSchema, { ...base, dependencyPolicy: DependencyPolicy.ALL_FINISHED })).split("\n"),
    ).toContain("after     a, b finished, whatever the outcome");
    expect(describeTask(create(TaskSchema, { taskId: "t", type: "echo" }))).not.toContain("after");
    // What comes after it: the ids listed, and how many more there are.
    expect(
      describeTask(create(TaskSchema, { taskId: "t", type: "echo", dependents: ["c", "d"], dependentsTotal: 5 })).split(
        "\n",
      ),
    ).toContain("before    c, d and 3 more");
    expect(describeTask(create(TaskSchema, { taskId: "t", type: "echo" }))).not.toContain("before");
  });

  test("a task with a concurrency key shows the key and its limit, and while it waits for a place, that", () => {
    const base = { taskId: "t", type: "echo", concurrencyKey: "tenant:acme", concurrencyLimit: 3 };
    expect(describeTask(create(TaskSchema, base)).split("\n")).toContain(
      "limit     at most 3 at once of concurrency key tenant:acme",
    );
    expect(describeTask(create(TaskSchema, { ...base, concurrencyWaiting: true })).split("\n")).toContain(
      "limit     at most 3 at once of concurrency key tenant:acme (waiting for a place)",
    );
    expect(describeTask(create(TaskSchema, { taskId: "t", type: "echo" }))).not.toContain("concurrency");
  });

  test("a task with a fairness key shows the key and its weight, and while it waits for its turn, that", () => {
    const base = { taskId: "t", type: "echo", fairnessKey: "tenant:acme", fairnessWeight: 3 };
    expect(describeTask(create(TaskSchema, base)).split("\n")).toContain("fairness  key tenant:acme, weight 3");
    expect(describeTask(create(TaskSchema, { ...base, fairnessWaiting: true })).split("\n")).toContain(
      "fairness  key tenant:acme, weight 3 (waiting for its turn)",
    );
    // A weight the gateway left unset is the default, 1.
    expect(describeTask(create(TaskSchema, { ...base, fairnessWeight: 0 })).split("\n")).toContain(
      "fairness  key tenant:acme, weight 1",
    );
    // Beside a concurrency key: one line each.
    const both = describeTask(create(TaskSchema, { ...base, concurrencyKey: "account:42", concurrencyLimit: 2 }));
    expect(both.split("\n").filter((line) => /^(limit|fairness) /.test(line))).toEqual([
      "limit     at most 2 at once of concurrency key account:42",
      "fairness  key tenant:acme, weight 3",
    ]);
    expect(describeTask(create(TaskSchema, { taskId: "t", type: "echo" }))).not.toContain("fairness");
  });

  test("a child task names its parent", () => {
    expect(describeTask(create(TaskSchema, { taskId: "t", type: "echo", parentTaskId: "p" })).split("\n")).toContain(
      "parent    p (submitted by its handler)",
    );
    expect(describeTask(create(TaskSchema, { taskId: "t", type: "echo" }))).not.toContain("parent");
  });

  test("a parent lists its children, and how many more there are", () => {
    const parent = create(TaskSchema, { taskId: "p", type: "fan-out", children: ["a", "b"], childrenTotal: 5 });
    expect(describeTask(parent).split("\n")).toContain("children  a, b and 3 more");
    expect(describeTask(create(TaskSchema, { taskId: "t", type: "echo" }))).not.toContain("children");
  });
});
