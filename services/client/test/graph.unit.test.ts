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

  test("a fan-out: the children its handler submitted, marked, then the fan-in child waiting for its siblings", async () => {
    type Fields = Partial<
      Pick<
        Task,
        "type" | "children" | "childrenTotal" | "parentTaskId" | "dependsOn" | "dependents" | "dependentsTotal"
      > & { dependenciesUnfinished: number }
    >;
    const task = (taskId: string, state: TaskState, fields: Fields = {}) =>
      create(TaskSchema, { taskId, type: "word-count", status: { state }, ...fields });
    const tasks = new Map(
      [
        task("p", TaskState.SUCCEEDED, { children: ["c1", "c2", "t"], childrenTotal: 4, dependents: [], type: "all" }),
        task("c1", TaskState.SUCCEEDED, { parentTaskId: "p", dependents: ["t"], dependentsTotal: 1 }),
        task("c2", TaskState.RUNNING, { parentTaskId: "p", dependents: ["t"], dependentsTotal: 1 }),
        task("t", TaskState.PENDING, { parentTaskId: "p", dependsOn: ["c1", "c2"], dependenciesUnfinished: 1 }),
      ].map((t) => [t.taskId, t]),
    );
    expect(renderGraph(tasks, "p", 5).split("\n")).toEqual([
      "p  all  SUCCEEDED",
      "├─ child c1  word-count  SUCCEEDED",
      "│  └─ t  word-count  PENDING (waiting for 1)",
      "├─ child c2  word-count  RUNNING",
      "│  └─ t  (above)",
      "├─ child t  (above)",
      "└─ … and 1 more",
    ]);
    expect(renderGraph(tasks, "t", 5).split("\n").slice(0, 2)).toEqual([
      "child of p",
      "after c1 (SUCCEEDED), c2 (RUNNING)",
    ]);
    const asked: string[] = [];
    await readGraph(
      async (id) => {
        asked.push(id);
        return { task: tasks.get(id) };
      },
      "p",
      2,
    );
    expect(asked.sort()).toEqual(["c1", "c2", "p", "t"]);
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
