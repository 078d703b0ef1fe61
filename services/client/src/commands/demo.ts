/**
 * Submits a mix of every task type across priorities and shows them flowing through the pipeline: the quickest
 * way to see the whole system work (pnpm start runs it; its exit code tells the smoke test whether it did).
 */
import { setMaxListeners } from "node:events";
import type { JsonObject } from "@bufbuild/protobuf";
import { Priority, type TaskClient, TaskState } from "@tm/proto";
import { CliError, ExitCode } from "../exit-codes.js";
import { type Io, println } from "../io.js";
import { isTerminal, renderSummary, stateName, summarise } from "../render.js";
import { DEFAULT_SUBMIT_RETRIES, generatedIdempotencyKey, printRetry, withSubmitRetries } from "../submit-retry.js";
import { type SubmittedStream, submitAndStream } from "../submit-stream.js";
import { watchTasks } from "./watch.js";

export interface DemoTask {
  type: string;
  payload: JsonObject;
  priority: Priority;
  expected: TaskState;
}

const PRIORITY_CYCLE = [Priority.HIGH, Priority.MEDIUM, Priority.LOW];

/** `count` tasks: exactly one `fail`, the rest cycling echo, sleep, checksum, flaky. */
export function demoTasks(count: number, random: () => number = Math.random): DemoTask[] {
  const tasks: DemoTask[] = [];
  for (let index = 0; index < count - 1; index++) {
    const priority = PRIORITY_CYCLE[index % PRIORITY_CYCLE.length]!;
    const kind = index % 4;
    if (kind === 0) tasks.push(ok("echo", { hello: "world", n: index }, priority));
    if (kind === 1) tasks.push(ok("sleep", { ms: 300 + Math.floor(random() * 1201) }, priority));
    if (kind === 2) tasks.push(ok("checksum", { data: `demo-${index}`, rounds: 20_000 }, priority));
    if (kind === 3) tasks.push(ok("flaky", { failures: 1 }, priority));
  }
  tasks.push({ type: "fail", payload: {}, priority: Priority.LOW, expected: TaskState.FAILED });
  return tasks;
}

function ok(type: string, payload: JsonObject, priority: Priority): DemoTask {
  return { type, payload, priority, expected: TaskState.SUCCEEDED };
}

export async function demoCommand(
  io: Io,
  client: TaskClient,
  options: { count: number; timeoutSeconds: number; json: boolean },
): Promise<ExitCode> {
  const tasks = demoTasks(options.count);
  const startedAt = Date.now();
  const timeout = AbortSignal.timeout(options.timeoutSeconds * 1000);
  setMaxListeners(0, timeout); // every task's stream listens on it
  // Each task submitted and followed in one SubmitTaskAndStreamStatus call; its stream is handed to the watch. A call
  // the gateway could not take (UNAVAILABLE: the stack still starting, say) is retried as `submit` retries, under one
  // idempotency key per task, so a retry never creates a second task.
  const open = new Map<string, SubmittedStream["messages"]>();
  const submitted = await Promise.all(
    tasks.map(async (task) => {
      const request = {
        type: task.type,
        payload: task.payload,
        priority: task.priority,
        metadata: { source: "taskctl-demo" },
        idempotencyKey: generatedIdempotencyKey(),
      };
      const {
        value: { taskId, messages },
      } = await withSubmitRetries(
        DEFAULT_SUBMIT_RETRIES,
        () => submitAndStream(client, request, timeout),
        (notice) => printRetry(io, notice),
      );
      open.set(taskId, messages);
      return { ...task, taskId, label: `${task.type}/${Priority[task.priority]!.toLowerCase()}`, startedAt };
    }),
  );
  if (!options.json) println(io.stdout, `submitted ${submitted.length} tasks; following them to the end:\n`);

  let result: Awaited<ReturnType<typeof watchTasks>>;
  try {
    result = await watchTasks(io, client, submitted, options.json, timeout, open);
  } catch (error) {
    if (!timeout.aborted) throw error;
    throw new CliError(`demo: tasks still unfinished after ${options.timeoutSeconds} s`, ExitCode.TaskFailed);
  }

  const views = result.view.views;
  const summary = summarise(views);
  const unexpected = submitted.filter((task, index) => views[index]!.state !== task.expected);
  if (options.json) {
    println(io.stdout, JSON.stringify({ summary, unexpected: unexpected.map((task) => task.taskId) }));
  } else {
    println(io.stdout, `\n${renderSummary(summary)}`);
    for (const task of unexpected) {
      const state = views.find((view) => view.taskId === task.taskId)!.state;
      println(
        io.stderr,
        `unexpected: ${task.label} ${task.taskId} ended ${stateName(state)}, expected ${stateName(task.expected)}`,
      );
    }
    if (unexpected.length === 0) println(io.stdout, "\nevery task ended as expected (the fail task is meant to fail).");
  }
  return unexpected.length === 0 && views.every((view) => isTerminal(view.state)) ? ExitCode.Ok : ExitCode.TaskFailed;
}
