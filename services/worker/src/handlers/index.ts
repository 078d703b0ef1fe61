/**
 * The handler registry: the built-in task types (one file each in this directory, one line in BUILT_IN_HANDLERS,
 * its name in BUILT_IN_TASK_TYPES in pkg/flow), and the deployment's own, loaded at start from WORKER_HANDLER_MODULES
 * (../handler-modules.ts).
 */
import { checksum } from "./checksum.js";
import { echo } from "./echo.js";
import { fail } from "./fail.js";
import { flaky } from "./flaky.js";
import { sleep } from "./sleep.js";
import type { TaskHandler } from "./types.js";

export type { TaskContext, TaskHandler } from "./types.js";

export const BUILT_IN_HANDLERS: readonly TaskHandler[] = [echo, sleep, checksum, flaky, fail];

/** The handler of each type: the built-in ones and `own` (loaded from WORKER_HANDLER_MODULES, checked there). */
export function handlerRegistry(own: readonly TaskHandler[] = []): (type: string) => TaskHandler | undefined {
  const byType = new Map([...BUILT_IN_HANDLERS, ...own].map((handler) => [handler.type, handler]));
  return (type) => byType.get(type);
}

/** The built-in handlers alone. */
export const handlerFor = handlerRegistry();
