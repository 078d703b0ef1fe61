/** The handler registry. Adding a task type: one file in this directory and one line in HANDLERS, plus its name in KNOWN_TASK_TYPES (pkg/flow). */
import { checksum } from "./checksum.js";
import { echo } from "./echo.js";
import { fail } from "./fail.js";
import { flaky } from "./flaky.js";
import { sleep } from "./sleep.js";
import type { TaskHandler } from "./types.js";

export type { TaskContext, TaskHandler } from "./types.js";

const HANDLERS: readonly TaskHandler[] = [echo, sleep, checksum, flaky, fail];

const byType = new Map(HANDLERS.map((handler) => [handler.type, handler]));

export function handlerFor(type: string): TaskHandler | undefined {
  return byType.get(type);
}

export const TASK_TYPES: readonly string[] = HANDLERS.map((handler) => handler.type);
