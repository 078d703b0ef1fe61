/**
 * Worker pools: TASK_ROUTES sends task types to named pools of workers, as Celery's task_routes sends tasks to queues
 * and Temporal's task queues pick workers. A type routed to a pool waits on the pool's own subjects
 * (tasks.worker.<priority>.<pool>), which only that pool's workers (WORKER_POOL) take; every other type waits on the
 * contract's tasks.worker.<priority> for the default pool. So a type that needs a GPU, a licence or a network zone runs
 * only on the workers that have it, and a slow type's backlog cannot hold up the others' workers.
 */
import { type Priority, type Subject, workerSubject } from "./subjects.js";
import type { TaskTypes } from "./task-types.js";

/**
 * A pool's name: a NATS subject token, part of its workers' durable consumer names and a metric label value, so
 * lowercase letters, digits, "_" and "-" only.
 */
const POOL_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

/** At most this many pools: each is three queues, three durables and their metric series. */
export const MAX_POOLS = 20;

/** Why a pool name is refused, or undefined if it is fine. */
export function poolNameProblem(name: string): string | undefined {
  if (!POOL_NAME.test(name)) {
    return `"${name.slice(0, 100)}" is not a pool name: 1 to 32 lowercase letters, digits, "_" or "-", starting with a letter or digit`;
  }
  // The metrics' `pool` label names the default pool so.
  if (name === DEFAULT_POOL_LABEL) return `"${name}" names the pool of unrouted types: leave the type unrouted instead`;
  return undefined;
}

/** The default pool (the types TASK_ROUTES does not name) in metric labels and listings. */
export const DEFAULT_POOL_LABEL = "default";

/** Which pool each routed task type goes to; unrouted types go to the default pool. */
export class TaskRoutes {
  /** The pools named, in the order first named. */
  readonly pools: readonly string[];

  constructor(readonly byType: ReadonlyMap<string, string> = new Map()) {
    this.pools = [...new Set(byType.values())];
  }

  /** The pool a type runs in; undefined: the default pool. */
  poolOf(type: string): string | undefined {
    return this.byType.get(type);
  }

  /** The subject a task of this type and priority waits on for its worker. */
  subjectFor(type: string, priority: Priority): Subject {
    return workerSubject(priority, this.poolOf(type));
  }

  /** The types named that `types` does not run: TASK_ROUTES must name only types the deployment has. */
  unknownTypes(types: TaskTypes): string[] {
    return [...this.byType.keys()].filter((type) => !types.has(type));
  }

  /** For messages: "transcode=gpu,render=gpu". */
  toString(): string {
    return [...this.byType].map(([type, pool]) => `${type}=${pool}`).join(",");
  }
}

/** No routes: every type in the default pool. */
export const NO_ROUTES = new TaskRoutes();

/**
 * TASK_ROUTES: "transcode=gpu,render=gpu,send-email=io", TYPE=POOL entries. Throws an Error naming the entry that is
 * wrong (no "=", a bad pool name, a type routed twice, too many pools). Whether each type exists is checked against
 * TASK_TYPES by the caller, which has it.
 */
export function parseTaskRoutes(text: string): TaskRoutes {
  const routes = new Map<string, string>();
  for (const entry of text.split(",")) {
    if (entry.trim() === "") continue;
    const [type = "", pool = "", ...rest] = entry.split("=").map((part) => part.trim());
    if (type === "" || pool === "" || rest.length > 0) {
      throw new Error(`"${entry.trim().slice(0, 100)}" is not TYPE=POOL`);
    }
    const problem = poolNameProblem(pool);
    if (problem) throw new Error(problem);
    if (routes.has(type)) throw new Error(`"${type}" is routed twice`);
    routes.set(type, pool);
  }
  const pools = new Set(routes.values());
  if (pools.size > MAX_POOLS) {
    throw new Error(`${pools.size} pools: at most ${MAX_POOLS} (each is three queues and their metric series)`);
  }
  return new TaskRoutes(routes);
}
