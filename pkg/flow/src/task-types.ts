/**
 * The task types the pipeline can run: the contract's built-in ones, which the worker implements itself, and the
 * deployment's own (TASK_TYPES), whose handlers the worker loads from WORKER_HANDLER_MODULES. The gateway rejects
 * other types with INVALID_ARGUMENT; ingest checks again because tasks.ingest is open to any publisher, and a task no
 * worker can run should fail there, once, rather than burn every retry in the worker.
 */
export const BUILT_IN_TASK_TYPES = ["echo", "sleep", "checksum", "flaky", "fail"] as const;

/**
 * A task type's name: it becomes a metric label, part of Redis keys (type_slots:<type>) and an entry of the worker's
 * `TYPE=…` settings, so no commas, equals signs, colons, slashes or spaces.
 */
const TYPE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** At most this many of the deployment's own types: each is a set of metric series on every stage. */
export const MAX_OWN_TASK_TYPES = 100;

/** The set of task types one deployment runs. */
export class TaskTypes {
  readonly names: readonly string[];
  readonly #names: ReadonlySet<string>;

  /** `own`: the deployment's types (TASK_TYPES), beside the built-in ones. */
  constructor(readonly own: readonly string[] = []) {
    this.names = [...BUILT_IN_TASK_TYPES, ...own];
    this.#names = new Set(this.names);
  }

  has(type: string): boolean {
    return this.#names.has(type);
  }

  /** For error messages: "echo, sleep, …". */
  toString(): string {
    return this.names.join(", ");
  }
}

/** Only the built-in types: a deployment without TASK_TYPES. */
export const BUILT_IN_ONLY = new TaskTypes();

/**
 * TASK_TYPES: "send-email,resize-image", the deployment's own types. Throws an Error naming the entry that is wrong
 * (a bad name, a repeat, a built-in type, too many).
 */
export function parseTaskTypes(text: string): TaskTypes {
  const own: string[] = [];
  for (const entry of text.split(",")) {
    const name = entry.trim();
    if (name === "") continue;
    if (!TYPE_NAME.test(name)) {
      throw new Error(
        `"${name.slice(0, 100)}" is not a task type name: 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit`,
      );
    }
    if ((BUILT_IN_TASK_TYPES as readonly string[]).includes(name)) {
      throw new Error(`"${name}" is a built-in task type: list only your own`);
    }
    if (own.includes(name)) throw new Error(`"${name}" is listed twice`);
    own.push(name);
  }
  if (own.length > MAX_OWN_TASK_TYPES) {
    throw new Error(`${own.length} types: at most ${MAX_OWN_TASK_TYPES} (each adds metric series on every stage)`);
  }
  return new TaskTypes(own);
}
