/**
 * Command-line parsing: turns argv into a typed invocation or a UsageError naming the problem. Pure (the
 * environment is passed in), so every rule here is unit-tested.
 */
import { type ParseArgsConfig, parseArgs } from "node:util";
import type { JsonObject } from "@bufbuild/protobuf";
import {
  CONCURRENCY_LIMIT_MAX,
  concurrencyKeyProblem,
  concurrencyLimitProblem,
  FAIRNESS_WEIGHT_MAX,
  fairnessKeyProblem,
  fairnessWeightProblem,
  Priority,
} from "@tm/proto";
import {
  type DlqAction,
  FINISHED_STATES,
  parseAttemptTimeout,
  parseDlqAction,
  parseExpiresAfter,
  parseGlobalConcurrency,
  parseHeartbeatTimeout,
  parseIsoTime,
  parseLimit,
  parseMaxAttempts,
  parseRetryBackoff,
  parseSchedule,
  parseStalledFor,
  parseStartingDeadline,
  parseStartRate,
  parseSucceededRetention,
  parseTaskListFilter,
  type SubmitSchedule,
  type TaskListFilter,
} from "./admin-args.js";
import { DEFAULT_GRAPH_DEPTH } from "./commands/graph.js";
import { UsageError } from "./exit-codes.js";
import { HELP, USAGE } from "./help.js";
import { DEFAULT_SUBMIT_RETRIES, MAX_SUBMIT_RETRIES } from "./submit-retry.js";
import type { RetryBackoffOption } from "./task-limits.js";

export interface GlobalOptions {
  addr: string;
  apiKey?: string;
  /** PEM files for an https:// gateway behind TLS with a private CA or client certificates (read by connection.ts). */
  tlsFiles?: TlsFiles;
  json: boolean;
}

export interface TlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

export type Invocation =
  | { command: "help"; text: string }
  | {
      command: "submit";
      globals: GlobalOptions;
      type: string;
      payload?: JsonObject;
      priority: Priority;
      idempotencyKey?: string;
      /** --key-reuse: after-finished (a key whose task has finished makes a new task) or replace-waiting (that, and a
       *  key whose task waits for its time has it replaced); absent: never. */
      keyReuse?: "after-finished" | "replace-waiting";
      metadata: Record<string, string>;
      watch: boolean;
      /** Retries of an UNAVAILABLE submission (submit-retry.ts). */
      retries: number;
      /** A delayed task (--delay, --at). */
      schedule?: SubmitSchedule;
      /** The handler's time limit per attempt (--attempt-timeout), ms. */
      attemptTimeoutMs?: number;
      /** --heartbeat-timeout, ms. */
      heartbeatTimeoutMs?: number;
      /** --max-attempts. */
      maxAttempts?: number;
      /** --retry-delay and the other --retry-* options. */
      retryBackoff?: RetryBackoffOption;
      /** --expires-after, ms. */
      expiresAfterMs?: number;
      /** --succeeded-retention, ms. */
      succeededRetentionMs?: number;
      /** --depends-on: the tasks it waits for. */
      dependsOn: string[];
      /** --run-when finished: it runs once they finished, whatever the outcome (default: all SUCCEEDED). */
      runWhenFinished: boolean;
      /** --concurrency-key and --concurrency-limit: at most `limit` tasks of `key` in the pipeline at once. */
      concurrency?: { key: string; limit: number };
      /** --fairness-key and --fairness-weight: its tenant's share of its type's window (weight absent: the
       *  gateway's default, 1). */
      fairness?: Fairness;
    }
  | {
      command: "submit-batch";
      globals: GlobalOptions;
      /** JSON Lines of SubmitTaskRequest (protobuf JSON); "-" is standard input. */
      file: string;
      /** Tasks per SubmitTasks call. */
      batchSize: number;
      /** Retries of the tasks (or calls) the gateway answered UNAVAILABLE. */
      retries: number;
    }
  | { command: "get"; globals: GlobalOptions; taskId: string }
  | { command: "graph"; globals: GlobalOptions; taskId: string; depth: number }
  | { command: "watch"; globals: GlobalOptions; taskIds: string[] }
  | { command: "cancel"; globals: GlobalOptions; taskId: string; reason?: string; children: boolean }
  | { command: "promote"; globals: GlobalOptions; taskId: string }
  | { command: "cancel-all"; globals: GlobalOptions; filter: TaskListFilter; reason?: string; dryRun: boolean }
  | { command: "result"; globals: GlobalOptions; taskId: string; resultStoreUrl: string }
  | { command: "demo"; globals: GlobalOptions; count: number; timeoutSeconds: number }
  | { command: "health"; globals: GlobalOptions }
  | { command: "stats"; globals: GlobalOptions }
  | { command: "workers"; globals: GlobalOptions }
  | { command: "workers-quiet" | "workers-resume"; globals: GlobalOptions; workerId: string }
  /** `concurrency <key> [--owner CALLER]`: one concurrency key's tasks, in the pipeline and waiting. */
  | { command: "concurrency"; globals: GlobalOptions; key: string; owner?: string }
  /** `fairness <type>`: one task type's fairness window and the keys waiting for their turn. */
  | { command: "fairness"; globals: GlobalOptions; taskType: string }
  | { command: "ls"; globals: GlobalOptions; filter: TaskListFilter; limit: number; pageToken?: string }
  | { command: "history"; globals: GlobalOptions; taskId: string }
  | { command: "logs"; globals: GlobalOptions; taskId: string; follow: boolean }
  | ({ command: "dlq"; globals: GlobalOptions; limit: number; pageToken?: string } & DlqAction)
  | { command: "requeue"; globals: GlobalOptions; taskIds: string[]; stalledForSeconds?: number }
  | { command: "requeue-stalled"; globals: GlobalOptions; filter: TaskListFilter; stalledForSeconds?: number }
  | { command: "pause" | "resume"; globals: GlobalOptions; priority: Priority }
  | ({ command: "schedule"; globals: GlobalOptions } & ScheduleAction)
  | ({ command: "limits"; globals: GlobalOptions } & LimitsAction);

/** `limits ls`, `limits set <type> [--global-concurrency N] [--rate R] [--paused]`, `limits clear|pause|resume
 *  <type>`. */
export type LimitsAction =
  | { action: "ls" }
  | {
      action: "set";
      type: string;
      globalConcurrency?: number;
      rate?: { perSecond: number; burst: number };
      paused?: boolean;
    }
  | { action: "clear" | "pause" | "resume"; type: string };

/** `schedule ls`, `schedule rm <id>`, `schedule add <id> <cron> <type> [task options]`. */
export type ScheduleAction =
  | { action: "ls" }
  | { action: "rm" | "pause" | "resume" | "run"; id: string }
  | {
      action: "add";
      id: string;
      cron: string;
      timezone?: string;
      replace: boolean;
      /** --overlap: what a run does while the previous run's task has not finished. */
      overlap: "allow" | "skip";
      /** --starting-deadline, ms: how late a run may still be submitted. */
      startingDeadlineMs?: number;
      /** --start-at, --end-at: no run before / after; --max-runs: at most that many runs. */
      startAt?: Date;
      endAt?: Date;
      maxRuns?: number;
      type: string;
      payload?: JsonObject;
      priority: Priority;
      metadata: Record<string, string>;
      attemptTimeoutMs?: number;
      /** --heartbeat-timeout, ms. */
      heartbeatTimeoutMs?: number;
      maxAttempts?: number;
      retryBackoff?: RetryBackoffOption;
      expiresAfterMs?: number;
      /** --succeeded-retention, ms. */
      succeededRetentionMs?: number;
      /** --concurrency-key and --concurrency-limit: each run's task's. */
      concurrency?: { key: string; limit: number };
      /** --fairness-key and --fairness-weight: each run's task's. */
      fairness?: Fairness;
    };

/** A task's fairness key and, when given, its weight (1 to FAIRNESS_WEIGHT_MAX), as TaskRequest.fairness. */
export interface Fairness {
  key: string;
  weight?: number;
}

/** `cancel-all` is `cancel --all`, parsed under `cancel`; `requeue-stalled` is `requeue --all-stalled`;
 *  `workers-quiet|resume` are `workers quiet|resume`. */
export type CommandName = Exclude<
  Invocation["command"],
  "help" | "cancel-all" | "requeue-stalled" | "workers-quiet" | "workers-resume"
>;

type Options = NonNullable<ParseArgsConfig["options"]>;

const GLOBAL_OPTIONS: Options = {
  addr: { type: "string" },
  "api-key": { type: "string" },
  "tls-ca-file": { type: "string" },
  "tls-cert-file": { type: "string" },
  "tls-key-file": { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
};

const RETRY_BACKOFF_OPTIONS: Options = {
  "retry-delay": { type: "string" },
  "retry-multiplier": { type: "string" },
  "retry-max-delay": { type: "string" },
  "retry-jitter": { type: "string" },
};

/** The task filter of `ls`, which `cancel --all` takes too. */
const TASK_FILTER_OPTIONS: Options = {
  state: { type: "string" },
  type: { type: "string" },
  priority: { type: "string" },
  since: { type: "string" },
  until: { type: "string" },
  query: { type: "string" },
  parent: { type: "string" },
};

const COMMAND_OPTIONS: Record<CommandName, Options> = {
  submit: {
    payload: { type: "string" },
    priority: { type: "string" },
    "idempotency-key": { type: "string" },
    "key-reuse": { type: "string" },
    meta: { type: "string", multiple: true },
    watch: { type: "boolean" },
    retries: { type: "string" },
    delay: { type: "string" },
    at: { type: "string" },
    "attempt-timeout": { type: "string" },
    "heartbeat-timeout": { type: "string" },
    "max-attempts": { type: "string" },
    ...RETRY_BACKOFF_OPTIONS,
    "expires-after": { type: "string" },
    "succeeded-retention": { type: "string" },
    "depends-on": { type: "string", multiple: true },
    "run-when": { type: "string" },
    "concurrency-key": { type: "string" },
    "concurrency-limit": { type: "string" },
    "fairness-key": { type: "string" },
    "fairness-weight": { type: "string" },
  },
  "submit-batch": { "batch-size": { type: "string" }, retries: { type: "string" } },
  get: {},
  graph: { depth: { type: "string" } },
  watch: {},
  cancel: {
    reason: { type: "string" },
    all: { type: "boolean" },
    children: { type: "boolean" },
    "dry-run": { type: "boolean" },
    ...TASK_FILTER_OPTIONS,
  },
  promote: {},
  result: {},
  demo: { count: { type: "string" }, timeout: { type: "string" } },
  health: {},
  stats: {},
  workers: {},
  concurrency: { owner: { type: "string" } },
  fairness: {},
  ls: {
    ...TASK_FILTER_OPTIONS,
    limit: { type: "string" },
    "page-token": { type: "string" },
    "stalled-for": { type: "string" },
    stalled: { type: "boolean" },
  },
  history: {},
  logs: { follow: { type: "boolean", short: "f" } },
  dlq: {
    all: { type: "boolean" },
    limit: { type: "string" },
    "page-token": { type: "string" },
    reason: { type: "string" },
    subject: { type: "string" },
    task: { type: "string" },
    type: { type: "string" },
    parent: { type: "string" },
  },
  requeue: { "stalled-for": { type: "string" }, "all-stalled": { type: "boolean" }, ...TASK_FILTER_OPTIONS },
  schedule: {
    timezone: { type: "string" },
    replace: { type: "boolean" },
    overlap: { type: "string" },
    "starting-deadline": { type: "string" },
    "start-at": { type: "string" },
    "end-at": { type: "string" },
    "max-runs": { type: "string" },
    payload: { type: "string" },
    priority: { type: "string" },
    meta: { type: "string", multiple: true },
    "attempt-timeout": { type: "string" },
    "heartbeat-timeout": { type: "string" },
    "max-attempts": { type: "string" },
    ...RETRY_BACKOFF_OPTIONS,
    "expires-after": { type: "string" },
    "succeeded-retention": { type: "string" },
    "concurrency-key": { type: "string" },
    "concurrency-limit": { type: "string" },
    "fairness-key": { type: "string" },
    "fairness-weight": { type: "string" },
  },
  pause: {},
  resume: {},
  limits: { "global-concurrency": { type: "string" }, rate: { type: "string" }, paused: { type: "boolean" } },
};

export const DEFAULT_ADDR = "http://127.0.0.1:50051";
export const DEFAULT_RESULT_STORE_URL = "http://127.0.0.1:8082";
export const DEFAULT_DEMO_COUNT = 12;
/** Tasks per SubmitTasks call: below the gateway's default maximum (GATEWAY_MAX_BATCH_TASKS, 500); 100 tasks of up
 *  to ~40 KB each fit gRPC's 4 MB message limit (larger payloads want a smaller --batch-size). */
export const DEFAULT_BATCH_SIZE = 100;
export const MAX_BATCH_SIZE = 10_000;
export const DEFAULT_DEMO_TIMEOUT_SECONDS = 120;

const PRIORITIES: Record<string, Priority> = { high: Priority.HIGH, medium: Priority.MEDIUM, low: Priority.LOW };

function isCommand(name: string | undefined): name is CommandName {
  return name !== undefined && Object.hasOwn(COMMAND_OPTIONS, name);
}

export function parseCommandLine(argv: string[], env: NodeJS.ProcessEnv = {}, now = Date.now()): Invocation {
  const commandIndex = findCommandIndex(argv);
  const name = argv[commandIndex];
  if (name === undefined || name === "help") return { command: "help", text: HELP.taskctl };
  if (!isCommand(name)) throw new UsageError(`unknown command "${name}"\n\n${USAGE}`);

  const rest = argv.filter((_, index) => index !== commandIndex);
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: rest,
      options: { ...GLOBAL_OPTIONS, ...COMMAND_OPTIONS[name] },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(`${name}: ${describeParseError(error as Error & { code?: string })}\n\n${HELP[name]}`);
  }
  const values = parsed.values as Record<string, string | string[] | boolean | undefined>;
  if (values.help) return { command: "help", text: HELP[name] };

  const globals: GlobalOptions = {
    addr: normaliseAddr(str(values.addr) ?? env.TASKCTL_ADDR ?? DEFAULT_ADDR),
    json: values.json === true,
  };
  const apiKey = str(values["api-key"]) ?? env.TASKCTL_API_KEY;
  if (apiKey) globals.apiKey = apiKey;
  const tlsFiles = tlsFilesOf(values, env, globals.addr);
  if (tlsFiles) globals.tlsFiles = tlsFiles;
  const positionals = parsed.positionals;

  switch (name) {
    case "submit": {
      const [type] = exactly(name, positionals, ["<type>"]);
      const payloadText = str(values.payload);
      const idempotencyKey = str(values["idempotency-key"]);
      const schedule = parseSchedule(str(values.delay), str(values.at));
      const attemptTimeoutMs = parseAttemptTimeout(str(values["attempt-timeout"]));
      const heartbeatTimeoutMs = parseHeartbeatTimeout(str(values["heartbeat-timeout"]));
      const maxAttempts = parseMaxAttempts(str(values["max-attempts"]));
      const retryBackoff = retryBackoffOf(values);
      const expiresAfterMs = parseExpiresAfter(str(values["expires-after"]));
      const succeededRetentionMs = parseSucceededRetention(str(values["succeeded-retention"]));
      const concurrency = concurrencyOf(str(values["concurrency-key"]), str(values["concurrency-limit"]), "submit");
      const fairness = fairnessOf(str(values["fairness-key"]), str(values["fairness-weight"]), "submit");
      return {
        command: "submit",
        globals,
        type: type!,
        ...(payloadText === undefined ? {} : { payload: parsePayload(payloadText) }),
        priority: parsePriority(str(values.priority)),
        ...(idempotencyKey ? { idempotencyKey } : {}),
        ...keyReuseOf(str(values["key-reuse"]), idempotencyKey !== undefined, schedule !== undefined),
        metadata: parseMetadata((values.meta as string[] | undefined) ?? []),
        watch: values.watch === true,
        retries: parseRetries(str(values.retries)),
        ...(schedule ? { schedule } : {}),
        ...(attemptTimeoutMs === undefined ? {} : { attemptTimeoutMs }),
        ...(heartbeatTimeoutMs === undefined ? {} : { heartbeatTimeoutMs }),
        ...(maxAttempts === undefined ? {} : { maxAttempts }),
        ...(retryBackoff ? { retryBackoff } : {}),
        ...(expiresAfterMs === undefined ? {} : { expiresAfterMs }),
        ...(succeededRetentionMs === undefined ? {} : { succeededRetentionMs }),
        // Repeatable, and each may list several ids separated by commas; the gateway checks them.
        dependsOn: ((values["depends-on"] as string[] | undefined) ?? []).flatMap((ids) =>
          ids
            .split(",")
            .map((id) => id.trim())
            .filter((id) => id !== ""),
        ),
        runWhenFinished: parseRunWhen(str(values["run-when"])),
        ...(concurrency ? { concurrency } : {}),
        ...(fairness ? { fairness } : {}),
      };
    }
    case "submit-batch":
      return {
        command: "submit-batch",
        globals,
        file: exactly(name, positionals, ["<file>"])[0]!,
        batchSize: parsePositiveInt("--batch-size", str(values["batch-size"]), DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE),
        retries: parseRetries(str(values.retries)),
      };
    case "get":
      return { command: "get", globals, taskId: exactly(name, positionals, ["<id>"])[0]! };
    case "graph":
      return {
        command: "graph",
        globals,
        taskId: exactly(name, positionals, ["<id>"])[0]!,
        depth: parsePositiveInt("--depth", str(values.depth), DEFAULT_GRAPH_DEPTH, 20),
      };
    case "watch":
      if (positionals.length === 0) throw new UsageError(`watch needs at least one task id\n\n${HELP.watch}`);
      return { command: "watch", globals, taskIds: [...new Set(positionals)] };
    case "cancel": {
      const reason = str(values.reason);
      const filterFlags = taskFilterFlags(values);
      const filterGiven = Object.values(filterFlags).some((value) => value !== undefined);
      if (values.all === true) {
        exactly("cancel", positionals, [], "cancel --all");
        if (values.children === true) throw new UsageError("cancel: --children goes with one task's id, not --all");
        if (!filterGiven) {
          throw new UsageError(
            "cancel --all needs a filter: --state, --type, --priority, --since, --until, --query or --parent (every unfinished " +
              "task: --until now)",
          );
        }
        return {
          command: "cancel-all",
          globals,
          filter: parseTaskListFilter({ ...filterFlags, stalledFor: undefined }, now),
          ...(reason ? { reason } : {}),
          dryRun: values["dry-run"] === true,
        };
      }
      if (filterGiven)
        throw new UsageError("cancel: --state, --type, --priority, --since, --until, --query and --parent need --all");
      if (values["dry-run"] === true) {
        throw new UsageError("cancel: --dry-run goes with --all (one task's state: taskctl get <id>)");
      }
      return {
        command: "cancel",
        globals,
        taskId: exactly(name, positionals, ["<id>"])[0]!,
        ...(reason ? { reason } : {}),
        children: values.children === true,
      };
    }
    case "promote":
      return { command: "promote", globals, taskId: exactly(name, positionals, ["<id>"])[0]! };
    case "result":
      return {
        command: "result",
        globals,
        taskId: exactly(name, positionals, ["<id>"])[0]!,
        resultStoreUrl: (env.RESULT_STORE_URL || DEFAULT_RESULT_STORE_URL).replace(/\/+$/, ""),
      };
    case "demo":
      exactly(name, positionals, []);
      return {
        command: "demo",
        globals,
        count: parsePositiveInt("--count", str(values.count), DEFAULT_DEMO_COUNT, 1000),
        timeoutSeconds: parsePositiveInt("--timeout", str(values.timeout), DEFAULT_DEMO_TIMEOUT_SECONDS, 3600),
      };
    case "health":
      exactly(name, positionals, []);
      return { command: "health", globals };
    case "stats":
      exactly(name, positionals, []);
      return { command: "stats", globals };
    case "workers": {
      const [action, ...rest] = positionals;
      if (action === undefined || action === "ls") {
        exactly(name, rest, [], "workers");
        return { command: "workers", globals };
      }
      if (action !== "quiet" && action !== "resume") {
        throw new UsageError(`workers: unknown action "${action}" (ls, quiet or resume)\n\n${HELP.workers}`);
      }
      const [workerId] = exactly(name, rest, ["<worker id>"], `workers ${action}`);
      return { command: `workers-${action}`, globals, workerId: workerId! };
    }
    case "concurrency":
      return { command: "concurrency", globals, ...parseConcurrencyKeyArgs(positionals, str(values.owner)) };
    case "fairness":
      // The type is the gateway's to check: it knows the deployment's TASK_TYPES.
      return { command: "fairness", globals, taskType: exactly("fairness", positionals, ["<type>"])[0]! };
    case "ls": {
      exactly(name, positionals, []);
      const filter = parseTaskListFilter(
        { ...taskFilterFlags(values), stalledFor: str(values["stalled-for"]), stalled: values.stalled === true },
        now,
      );
      return { command: "ls", globals, filter, limit: parseLimit(str(values.limit)), ...pageToken(values) };
    }
    case "history":
      return { command: "history", globals, taskId: exactly(name, positionals, ["<id>"])[0]! };
    case "logs":
      return {
        command: "logs",
        globals,
        taskId: exactly(name, positionals, ["<id>"])[0]!,
        follow: values.follow === true,
      };
    case "dlq":
      return {
        command: "dlq",
        globals,
        ...parseDlqAction(
          positionals,
          values.all === true,
          {
            reason: str(values.reason),
            subject: str(values.subject),
            task: str(values.task),
            type: str(values.type),
            parent: str(values.parent),
          },
          HELP.dlq,
        ),
        limit: parseLimit(str(values.limit)),
        ...pageToken(values),
      };
    case "requeue": {
      const stalledForSeconds = parseStalledFor(str(values["stalled-for"]));
      const filterFlags = taskFilterFlags(values);
      if (values["all-stalled"] === true) {
        exactly("requeue", positionals, [], "requeue --all-stalled");
        const filter = parseTaskListFilter({ ...filterFlags, stalledFor: undefined }, now);
        if (filter.state !== undefined && FINISHED_STATES.has(filter.state)) {
          throw new UsageError(
            "requeue --all-stalled: stalled tasks are unfinished: drop --state or name an unfinished state",
          );
        }
        return {
          command: "requeue-stalled",
          globals,
          filter: { ...filter, stalled: true },
          ...(stalledForSeconds === undefined ? {} : { stalledForSeconds }),
        };
      }
      if (Object.values(filterFlags).some((value) => value !== undefined))
        throw new UsageError("requeue: --state, --type, --priority, --since, --until and --query need --all-stalled");
      if (positionals.length === 0) throw new UsageError(`requeue needs at least one task id\n\n${HELP.requeue}`);
      return {
        command: "requeue",
        globals,
        taskIds: [...new Set(positionals)],
        ...(stalledForSeconds === undefined ? {} : { stalledForSeconds }),
      };
    }
    case "schedule":
      return { command: "schedule", globals, ...parseScheduleAction(positionals, values) };
    case "limits":
      return { command: "limits", globals, ...parseLimitsAction(positionals, values) };
    case "pause":
    case "resume": {
      const [queue] = exactly(name, positionals, ["<priority>"]);
      const priority = PRIORITIES[queue!.toLowerCase()];
      if (priority === undefined) throw new UsageError(`${name}: the queue is high, medium or low (got "${queue}")`);
      return { command: name, globals, priority };
    }
  }
}

function parseLimitsAction(positionals: string[], values: Record<string, unknown>): LimitsAction {
  const [action, ...rest] = positionals;
  if (action === "ls") {
    exactly("limits", rest, [], "limits ls");
    return { action: "ls" };
  }
  if (action === "clear" || action === "pause" || action === "resume") {
    return { action, type: exactly("limits", rest, ["<type>"], `limits ${action}`)[0]! };
  }
  if (action !== "set") {
    throw new UsageError(
      `${action === undefined ? "limits: missing action (ls, set, clear, pause or resume)" : `limits: unknown action "${action}"`}\n\n${HELP.limits}`,
    );
  }
  const [type] = exactly("limits", rest, ["<type>"], "limits set");
  const globalConcurrency = parseGlobalConcurrency(str(values["global-concurrency"]));
  const rateText = str(values.rate);
  const rate = rateText === undefined ? undefined : parseStartRate(rateText);
  const paused = values.paused === true;
  if (globalConcurrency === undefined && rate === undefined && !paused) {
    throw new UsageError(
      "limits set: give --global-concurrency N, --rate N/UNIT, --paused, or several (to remove them: limits clear)",
    );
  }
  return {
    action: "set",
    type: type!,
    ...(globalConcurrency === undefined ? {} : { globalConcurrency }),
    ...(rate ? { rate } : {}),
    ...(paused ? { paused } : {}),
  };
}

/** The first positional, skipping the values of global flags given before the command ("--addr HOST submit"). */
function findCommandIndex(argv: string[]): number {
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!;
    if (!arg.startsWith("-")) return index;
    const option = GLOBAL_OPTIONS[arg.replace(/^--/, "")];
    if (option?.type === "string") index++;
  }
  return -1;
}

function describeParseError(error: Error & { code?: string }): string {
  // parseArgs' own wording for an unknown flag talks about positionals starting with "-", which misleads here.
  const unknown = error.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && /'([^']+)'/.exec(error.message);
  return unknown ? `unknown option ${unknown[1]}` : error.message;
}

function pageToken(values: Record<string, unknown>): { pageToken?: string } {
  const token = str(values["page-token"]);
  return token ? { pageToken: token } : {};
}

/** The values of TASK_FILTER_OPTIONS, as given (ls, cancel --all). */
function taskFilterFlags(values: Record<string, unknown>) {
  return {
    state: str(values.state),
    type: str(values.type),
    priority: str(values.priority),
    since: str(values.since),
    until: str(values.until),
    query: str(values.query),
    parent: str(values.parent),
  };
}

/** `submit --key-reuse never|after-finished|replace-waiting`: when a key names a new task, or replaces its waiting
 *  one; only with --idempotency-key (a key taskctl makes up for its own retries is new each run), replace-waiting
 *  with --delay or --at. */
function keyReuseOf(
  text: string | undefined,
  hasKey: boolean,
  delayed: boolean,
): { keyReuse?: "after-finished" | "replace-waiting" } {
  if (text === undefined || text === "never") return {};
  if (text !== "after-finished" && text !== "replace-waiting") {
    throw new UsageError(`submit: --key-reuse is never, after-finished or replace-waiting (got "${text}")`);
  }
  if (!hasKey) throw new UsageError("submit: --key-reuse goes with --idempotency-key");
  if (text === "replace-waiting" && !delayed) {
    throw new UsageError("submit: --key-reuse replace-waiting replaces a waiting task: it goes with --delay or --at");
  }
  return { keyReuse: text };
}

/** `submit --run-when succeeded|finished`: whether the task runs once its dependencies finished whatever the outcome. */
function parseRunWhen(text: string | undefined): boolean {
  if (text === undefined || text === "succeeded") return false;
  if (text === "finished") return true;
  throw new UsageError(`submit: --run-when is succeeded or finished (got "${text}")`);
}

/** `submit --concurrency-key KEY --concurrency-limit N`: both or neither, checked as the gateway checks them. */
function concurrencyOf(
  key: string | undefined,
  limitText: string | undefined,
  command: "submit" | "schedule add",
): { key: string; limit: number } | undefined {
  if (key === undefined && limitText === undefined) return undefined;
  if (limitText === undefined) throw new UsageError(`${command}: --concurrency-key goes with --concurrency-limit N`);
  if (key === undefined) throw new UsageError(`${command}: --concurrency-limit goes with --concurrency-key KEY`);
  const keyProblem = concurrencyKeyProblem(key);
  if (keyProblem) throw new UsageError(`${command}: --concurrency-key ${keyProblem}`);
  const limit = limitText.trim() === "" ? Number.NaN : Number(limitText);
  if (concurrencyLimitProblem(limit)) {
    throw new UsageError(
      `${command}: --concurrency-limit must be a whole number from 1 to ${CONCURRENCY_LIMIT_MAX} (got "${limitText}")`,
    );
  }
  return { key, limit };
}

/** `submit --fairness-key KEY [--fairness-weight N]`: a weight needs a key (the gateway refuses one alone); both
 *  checked as the gateway checks them. No weight: the gateway's default, 1. */
function fairnessOf(
  key: string | undefined,
  weightText: string | undefined,
  command: "submit" | "schedule add",
): Fairness | undefined {
  if (key === undefined && weightText === undefined) return undefined;
  if (key === undefined) throw new UsageError(`${command}: --fairness-weight goes with --fairness-key KEY`);
  const keyProblem = fairnessKeyProblem(key);
  if (keyProblem) throw new UsageError(`${command}: --fairness-key ${keyProblem}`);
  if (weightText === undefined) return { key };
  const weight = weightText.trim() === "" ? Number.NaN : Number(weightText);
  if (fairnessWeightProblem(weight)) {
    throw new UsageError(
      `${command}: --fairness-weight must be a whole number from 1 to ${FAIRNESS_WEIGHT_MAX} (got "${weightText}")`,
    );
  }
  return { key, weight };
}

/** `concurrency <key> [--owner CALLER]`: the key checked as the gateway checks it; --owner, when given, not empty
 *  (whether it is required or refused depends on the gateway's GATEWAY_TASK_ISOLATION: the gateway says). */
function parseConcurrencyKeyArgs(positionals: string[], owner: string | undefined): { key: string; owner?: string } {
  const [key] = exactly("concurrency", positionals, ["<key>"]);
  const keyProblem = concurrencyKeyProblem(key);
  if (keyProblem) throw new UsageError(`concurrency: <key> ${keyProblem}`);
  if (owner !== undefined && owner.trim() === "") throw new UsageError("concurrency: --owner must not be empty");
  return { key: key!, ...(owner === undefined ? {} : { owner }) };
}

/** The --retry-* options of submit and schedule add. */
function retryBackoffOf(values: Record<string, unknown>): RetryBackoffOption | undefined {
  return parseRetryBackoff({
    delay: str(values["retry-delay"]),
    multiplier: str(values["retry-multiplier"]),
    maxDelay: str(values["retry-max-delay"]),
    jitter: str(values["retry-jitter"]),
  });
}

function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/** `label` names the command in messages when it has an action ("schedule add"). */
function exactly(command: CommandName, positionals: string[], names: string[], label: string = command): string[] {
  if (positionals.length < names.length) {
    throw new UsageError(`${label}: missing ${names.slice(positionals.length).join(" ")}\n\n${HELP[command]}`);
  }
  if (positionals.length > names.length) {
    throw new UsageError(`${label}: unexpected argument "${positionals[names.length]}"\n\n${HELP[command]}`);
  }
  for (const [index, value] of positionals.entries()) {
    if (value.trim() === "") throw new UsageError(`${label}: ${names[index]} must not be empty`);
  }
  return positionals;
}

/** --tls-ca-file, --tls-cert-file and --tls-key-file (or $TASKCTL_TLS_*_FILE), checked against the address. */
function tlsFilesOf(
  values: Record<string, unknown>,
  env: Record<string, string | undefined>,
  addr: string,
): TlsFiles | undefined {
  const files: TlsFiles = {};
  for (const part of ["ca", "cert", "key"] as const) {
    const file = str(values[`tls-${part}-file`]) ?? env[`TASKCTL_TLS_${part.toUpperCase()}_FILE`];
    if (file) files[part] = file;
  }
  if (Object.keys(files).length === 0) return undefined;
  if (!addr.startsWith("https://"))
    throw new UsageError(`--tls-*-file options need an https:// address (--addr ${addr})`);
  if ((files.cert === undefined) !== (files.key === undefined))
    throw new UsageError("--tls-cert-file and --tls-key-file go together: give both, or neither");
  return files;
}

/** Accepts "host:port" as well as a URL, since that is how people usually type a gRPC address. */
export function normaliseAddr(addr: string): string {
  const trimmed = addr.trim().replace(/\/+$/, "");
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `http://${trimmed}`;
}

export function parsePayload(text: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`--payload is not valid JSON: ${(error as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    const kind = value === null ? "null" : Array.isArray(value) ? "an array" : `a ${typeof value}`;
    throw new UsageError(`--payload must be a JSON object (e.g. '{"ms":500}'), got ${kind}`);
  }
  return value as JsonObject;
}

export function parsePriority(text: string | undefined): Priority {
  if (text === undefined) return Priority.MEDIUM;
  const priority = PRIORITIES[text.toLowerCase()];
  if (priority === undefined) throw new UsageError(`--priority must be one of high, medium, low (got "${text}")`);
  return priority;
}

export function parseMetadata(pairs: string[]): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (const pair of pairs) {
    const separator = pair.indexOf("=");
    if (separator <= 0) throw new UsageError(`--meta must look like key=value (got "${pair}")`);
    metadata[pair.slice(0, separator)] = pair.slice(separator + 1);
  }
  return metadata;
}

function parsePositiveInt(flag: string, text: string | undefined, fallback: number, max: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new UsageError(`${flag} must be a whole number from 1 to ${max} (got "${text}")`);
  }
  return value;
}

function parseRetries(text: string | undefined): number {
  if (text === undefined) return DEFAULT_SUBMIT_RETRIES;
  const value = Number(text);
  if (text.trim() === "" || !Number.isInteger(value) || value < 0 || value > MAX_SUBMIT_RETRIES) {
    throw new UsageError(`--retries must be a whole number from 0 to ${MAX_SUBMIT_RETRIES} (got "${text}")`);
  }
  return value;
}

function parseScheduleAction(
  positionals: string[],
  values: Record<string, string | string[] | boolean | undefined>,
): ScheduleAction {
  const [action, ...rest] = positionals;
  if (action === "ls") {
    exactly("schedule", rest, [], "schedule ls");
    return { action: "ls" };
  }
  if (action === "rm" || action === "pause" || action === "resume" || action === "run") {
    return { action, id: exactly("schedule", rest, ["<id>"], `schedule ${action}`)[0]! };
  }
  if (action !== "add") {
    throw new UsageError(
      `${action === undefined ? "schedule: missing action (add, ls, rm, pause, resume or run)" : `schedule: unknown action "${action}"`}\n\n${HELP.schedule}`,
    );
  }
  const [id, cron, type] = exactly("schedule", rest, ["<id>", "<cron>", "<type>"], "schedule add");
  const payloadText = str(values.payload);
  const timezone = str(values.timezone);
  const attemptTimeoutMs = parseAttemptTimeout(str(values["attempt-timeout"]));
  const heartbeatTimeoutMs = parseHeartbeatTimeout(str(values["heartbeat-timeout"]));
  const maxAttempts = parseMaxAttempts(str(values["max-attempts"]));
  const retryBackoff = retryBackoffOf(values);
  const expiresAfterMs = parseExpiresAfter(str(values["expires-after"]));
  const succeededRetentionMs = parseSucceededRetention(str(values["succeeded-retention"]));
  const concurrency = concurrencyOf(str(values["concurrency-key"]), str(values["concurrency-limit"]), "schedule add");
  const fairness = fairnessOf(str(values["fairness-key"]), str(values["fairness-weight"]), "schedule add");
  const overlap = str(values.overlap) ?? "allow";
  if (overlap !== "allow" && overlap !== "skip") {
    throw new UsageError(`schedule add: --overlap is allow or skip (got "${overlap}")`);
  }
  const startingDeadlineMs = parseStartingDeadline(str(values["starting-deadline"]));
  const startAt = parseIsoTime("--start-at", str(values["start-at"]));
  const endAt = parseIsoTime("--end-at", str(values["end-at"]));
  const maxRunsText = str(values["max-runs"]);
  return {
    action: "add",
    ...(startAt ? { startAt } : {}),
    ...(endAt ? { endAt } : {}),
    ...(maxRunsText === undefined ? {} : { maxRuns: parsePositiveInt("--max-runs", maxRunsText, 0, 1_000_000) }),
    id: id!,
    cron: cron!,
    type: type!,
    replace: values.replace === true,
    overlap,
    ...(startingDeadlineMs === undefined ? {} : { startingDeadlineMs }),
    ...(timezone ? { timezone } : {}),
    ...(payloadText === undefined ? {} : { payload: parsePayload(payloadText) }),
    priority: parsePriority(str(values.priority)),
    metadata: parseMetadata((values.meta as string[] | undefined) ?? []),
    ...(attemptTimeoutMs === undefined ? {} : { attemptTimeoutMs }),
    ...(heartbeatTimeoutMs === undefined ? {} : { heartbeatTimeoutMs }),
    ...(maxAttempts === undefined ? {} : { maxAttempts }),
    ...(retryBackoff ? { retryBackoff } : {}),
    ...(expiresAfterMs === undefined ? {} : { expiresAfterMs }),
    ...(succeededRetentionMs === undefined ? {} : { succeededRetentionMs }),
    ...(concurrency ? { concurrency } : {}),
    ...(fairness ? { fairness } : {}),
  };
}
