import { create } from "@bufbuild/protobuf";
import { type Task, TaskSchema, TaskState } from "@tm/proto";
import { describe, expect, test } from "vitest";
import { readGraph, renderGraph } from "../src/commands/graph.js";

/** A diamond and a tail: a → b, c; b, c → d; d → e; and x, which a waits for. */
function graph(): Map<string, Task> {
  const task = (
    taskId: string,
    state: TaskState,
    fields: Partial<Pick<Task, "dependsOn" | "dependents" | "dependentsTotal" | "dependenciesUnfinished">> = {},
  ) => create(TaskSchema, { taskId, type: "echo", status: { state }, ...fields });
  return new Map(
    [
      task("a", TaskState.SUCCEEDED, { dependsOn: ["x"], dependents: ["b", "c"], dependentsTotal: 2 }),
      task("b", TaskState.SUCCEEDED, { dependsOn: ["a"], dependents: ["d"], dependentsTotal: 1 }),
      task("c", TaskState.RUNNING, { dependsOn: ["a"], dependents: ["d"], dependentsTotal: 1 }),
      task("d", TaskState.PENDING, {
        dependsOn: ["b", "c"],
        dependenciesUnfinished: 1,
        dependents: ["e"],
        dependentsTotal: 3,
      }),
      task("e", TaskState.PENDING, { dependsOn: ["d"], dependenciesUnfinished: 1 }),
      task("x", TaskState.SUCCEEDED, { dependents: ["a"], dependentsTotal: 1 }),
    ].map((t) => [t.taskId, t]),
  );
}

describe("taskctl graph", () => {
  test("the task, what it waits for, and the tree after it: a task reached twice is marked, the unlisted counted", () => {
    expect(renderGraph(graph(), "a", 5).split("\n")).toEqual([
      "after x (SUCCEEDED)",
      "a  echo  SUCCEEDED",
      "├─ b  echo  SUCCEEDED",
      "│  └─ d  echo  PENDING (waiting for 1)",
      "│     ├─ e  echo  PENDING (waiting for 1)",
      "│     └─ … and 2 more",
      "└─ c  echo  RUNNING",
      "   └─ d  (above)",
    ]);
  });

  test("--depth cuts the tree, saying how many lie below", () => {
    expect(renderGraph(graph(), "a", 1).split("\n")).toEqual([
      "after x (SUCCEEDED)",
      "a  echo  SUCCEEDED",
      "├─ b  echo  SUCCEEDED",
      "│  └─ … 1 more below (--depth 1)",
      "└─ c  echo  RUNNING",
      "   └─ … 1 more below (--depth 1)",
    ]);
  });

  test("reads the task, its dependencies and its dependents to the depth asked, each once", async () => {
    const all = graph();
    const asked: string[] = [];
    const read = await readGraph(
      async (id) => {
        asked.push(id);
        return { task: all.get(id) };
      },
      "a",
      2,
    );
    expect(asked.sort()).toEqual(["a", "b", "c", "d", "x"]);
    expect([...read.keys()].sort()).toEqual(["a", "b", "c", "d", "x"]);
  });
});
