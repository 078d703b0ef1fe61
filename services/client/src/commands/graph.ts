/**
 * `taskctl graph <id> [--depth N]`: a task with what it waits for and, as a tree, what comes after it (the child tasks
 * its handler submitted, marked "child", and its dependents; theirs, …: BullMQ's getFlow, Airflow's graph view), each
 * with its state, read with GetTask (dependencies, children and dependents). A task reached twice (a diamond, a fan-in
 * child that waits for its siblings) is listed in full once, then as "(above)"; the tree stops at --depth levels and
 * at GRAPH_MAX_TASKS tasks, saying how many it left out.
 */
import { type Task, type TaskClient, TaskState } from "@tm/proto";
import { UNARY_TIMEOUT_MS } from "../connection.js";
import { CliError, ExitCode } from "../exit-codes.js";
import { type Io, println } from "../io.js";
import { stateName } from "../render.js";

/** The most tasks one graph reads (one GetTask each). */
export const GRAPH_MAX_TASKS = 200;
export const DEFAULT_GRAPH_DEPTH = 5;

/** The tasks read for the graph, by id; one that could not be read (expired) is absent. */
export type Tasks = ReadonlyMap<string, Task>;

export async function graphCommand(
  io: Io,
  client: TaskClient,
  { taskId, depth, json }: { taskId: string; depth: number; json: boolean },
): Promise<ExitCode> {
  const tasks = await readGraph((id) => client.getTask({ taskId: id }, { timeoutMs: UNARY_TIMEOUT_MS }), taskId, depth);
  if (!tasks.has(taskId)) throw new CliError(`not found: task ${taskId}`, ExitCode.NotFound);
  println(io.stdout, json ? JSON.stringify(graphJson(tasks, taskId, depth)) : renderGraph(tasks, taskId, depth));
  return ExitCode.Ok;
}

/** Reads the task, its dependencies and its dependents level by level, up to `depth` levels and GRAPH_MAX_TASKS. */
export async function readGraph(
  getTask: (id: string) => Promise<{ task?: Task | undefined }>,
  rootId: string,
  depth: number,
): Promise<Map<string, Task>> {
  const tasks = new Map<string, Task>();
  const read = async (ids: readonly string[]) => {
    const wanted = [...new Set(ids)].filter((id) => !tasks.has(id)).slice(0, GRAPH_MAX_TASKS - tasks.size);
    const found = await Promise.all(wanted.map((id) => getTask(id).catch(() => ({ task: undefined }))));
    for (const { task } of found) if (task) tasks.set(task.taskId, task);
  };
  await read([rootId]);
  const root = tasks.get(rootId);
  if (!root) return tasks;
  await read(root.dependsOn);
  let level = [root];
  for (let at = 1; at <= depth && level.length > 0; at++) {
    const next = level.flatMap((task) => [...task.children, ...task.dependents]);
    await read(next);
    level = next.map((id) => tasks.get(id)).filter((task): task is Task => task !== undefined);
  }
  return tasks;
}

/** One task's line: id, type and state (with what it still waits for). */
function describe(task: Task): string {
  const state = task.status ? stateName(task.status.state) : "UNKNOWN";
  const waiting =
    task.status?.state === TaskState.PENDING && task.dependenciesUnfinished > 0
      ? ` (waiting for ${task.dependenciesUnfinished})`
      : "";
  return `${task.taskId}  ${task.type}  ${state}${waiting}`;
}

/** The graph as text: what the task waits for, then the task and the tree of what comes after it. */
export function renderGraph(tasks: Tasks, rootId: string, depth: number): string {
  const root = tasks.get(rootId);
  if (!root) return `task ${rootId} not found`;
  const lines: string[] = [];
  if (root.parentTaskId) lines.push(`child of ${root.parentTaskId}`);
  if (root.dependsOn.length > 0) {
    const after = root.dependsOn.map((id) => {
      const dependency = tasks.get(id);
      return `${id} (${dependency?.status ? stateName(dependency.status.state) : "gone"})`;
    });
    lines.push(`after ${after.join(", ")}`);
  }
  lines.push(describe(root));
  const shown = new Set([rootId]);
  const branch = (task: Task, prefix: string, level: number) => {
    // Its children first (what its handler submitted), then the tasks that waited for it.
    const next = [
      ...task.children.map((id) => ({ id, mark: "child " })),
      ...task.dependents.map((id) => ({ id, mark: "" })),
    ];
    const total = task.childrenTotal + task.dependentsTotal;
    const unlisted = total - next.length;
    if (level >= depth && next.length > 0) {
      lines.push(`${prefix}└─ … ${total} more below (--depth ${depth})`);
      return;
    }
    for (const [i, { id, mark }] of next.entries()) {
      const last = i === next.length - 1 && unlisted === 0;
      const head = `${prefix}${last ? "└─ " : "├─ "}${mark}`;
      const after = tasks.get(id);
      if (!after) lines.push(`${head}${id}  (not read: gone, or past ${GRAPH_MAX_TASKS} tasks)`);
      else if (shown.has(id)) lines.push(`${head}${id}  (above)`);
      else {
        shown.add(id);
        lines.push(`${head}${describe(after)}`);
        branch(after, `${prefix}${last ? "   " : "│  "}`, level + 1);
      }
    }
    if (unlisted > 0) lines.push(`${prefix}└─ … and ${unlisted} more`);
  };
  branch(root, "", 0);
  return lines.join("\n");
}

/** --json: the task and every task read, each with its state, dependencies and dependents. */
function graphJson(tasks: Tasks, rootId: string, depth: number) {
  return {
    taskId: rootId,
    depth,
    tasks: [...tasks.values()].map((task) => ({
      taskId: task.taskId,
      type: task.type,
      state: task.status ? stateName(task.status.state) : "UNKNOWN",
      dependsOn: task.dependsOn,
      dependents: task.dependents,
      dependentsTotal: task.dependentsTotal,
      parentTaskId: task.parentTaskId,
      children: task.children,
      childrenTotal: task.childrenTotal,
    })),
  };
}
