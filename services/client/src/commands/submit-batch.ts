/**
 * `taskctl submit-batch <file|->`: the tasks of a JSON Lines file, --batch-size per SubmitTasks call. Every line is
 * parsed before anything is sent. Tasks the gateway answered UNAVAILABLE (one task's outage, or the whole call) are
 * sent again with the same idempotency keys, as `submit` retries; a line without a key gets one made for this run, so
 * that a retry of a task that was in fact accepted cannot make a second one. A call refused by the rate limit is sent
 * again once the gateway's pushback has passed, so a file larger than the caller's rate goes through at that rate.
 * A line's `dependsOnBatchItems` name earlier tasks of the file (by their place, from 0): each call sends them as
 * places in that call, or as ids (depends_on) once an earlier call accepted them, so a graph may span calls and
 * retries; a task whose dependency was refused is refused here, unsent.
 */
import { readFile } from "node:fs/promises";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { type SubmitTaskOutcome, type SubmitTaskRequest, SubmitTaskRequestSchema, type TaskClient } from "@tm/proto";
import type { Invocation } from "../args.js";
import { UNARY_TIMEOUT_MS } from "../connection.js";
import { describeError, ExitCode, UsageError } from "../exit-codes.js";
import { type Io, println } from "../io.js";
import {
  generatedIdempotencyKey,
  isRetryableSubmitError,
  printRetry,
  rateLimitWaitMs,
  retryDelayMs,
} from "../submit-retry.js";

type SubmitBatchInvocation = Extract<Invocation, { command: "submit-batch" }>;

/** A task of the file: its 1-based line, the request, and whether its idempotency key is one made for this run. */
export interface BatchLine {
  line: number;
  request: SubmitTaskRequest;
  generatedKey: boolean;
  /** The earlier tasks of the file it waits for, by their place among the file's tasks (its dependsOnBatchItems). */
  after: number[];
}

export type LineOutcome =
  | { line: number; taskId: string; deduplicated: boolean }
  | { line: number; error: { code: Code; message: string } };

/** The file's tasks, or a UsageError naming the first line that is not a SubmitTaskRequest. Blank lines are skipped. */
export function parseBatchLines(text: string): BatchLine[] {
  const lines: BatchLine[] = [];
  for (const [index, raw] of text.split("\n").entries()) {
    if (raw.trim() === "") continue;
    const line = index + 1;
    let request: SubmitTaskRequest;
    try {
      request = fromJson(SubmitTaskRequestSchema, JSON.parse(raw) as JsonValue);
    } catch (error) {
      throw new UsageError(`line ${line}: not a task (a SubmitTaskRequest in JSON): ${(error as Error).message}`);
    }
    const generatedKey = request.idempotencyKey === "";
    if (generatedKey) request.idempotencyKey = generatedIdempotencyKey();
    const after = request.dependsOnBatchItems;
    for (const [k, place] of after.entries()) {
      if (place >= lines.length) {
        throw new UsageError(
          `line ${line}: dependsOnBatchItems[${k}]: ${place} is not an earlier task of the file (this one is ${lines.length}; tasks count from 0, blank lines aside)`,
        );
      }
    }
    lines.push({ line, request: { ...request, dependsOnBatchItems: [] }, generatedKey, after });
  }
  if (lines.length === 0) throw new UsageError("the file holds no tasks");
  return lines;
}

export async function submitBatchCommand(
  io: Io,
  client: TaskClient,
  invocation: SubmitBatchInvocation,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
): Promise<ExitCode> {
  const text = await readFile(invocation.file === "-" ? "/dev/stdin" : invocation.file, "utf8").catch(
    (error: NodeJS.ErrnoException) => {
      throw new UsageError(`cannot read ${invocation.file}: ${error.code ?? error.message}`);
    },
  );
  const lines = parseBatchLines(text);
  const outcomes = new Map<number, LineOutcome>();
  for (let start = 0; start < lines.length; start += invocation.batchSize) {
    const chunk = lines.slice(start, start + invocation.batchSize);
    try {
      await submitChunk(io, client, { chunk, lines, outcomes }, invocation.retries, sleep);
    } catch (error) {
      // A call refused as a whole (a batch over the gateway's limit, the rate limit, credentials): the tasks already
      // accepted (by earlier calls, or an earlier attempt of this one) are still printed, so their ids are not lost;
      // the others of this chunk and the rest are reported as not sent.
      const { message } = describeError(error, invocation.globals.addr);
      const { code } = ConnectError.from(error);
      for (const { line } of lines.slice(start)) {
        if (!outcomes.has(line)) outcomes.set(line, { line, error: { code, message: `not sent: ${message}` } });
      }
      break;
    }
  }
  return report(io, invocation.globals, lines, outcomes);
}

/** What a chunk's calls read and write: the file's tasks, and each line's outcome once known (by line number). */
interface BatchProgress {
  chunk: BatchLine[];
  lines: BatchLine[];
  outcomes: Map<number, LineOutcome>;
}

/**
 * One chunk, with its UNAVAILABLE tasks (or the whole call, when it was unavailable) sent again up to `retries`.
 * Each line's outcome goes into `outcomes` as soon as it is known: a later call (or attempt) reads it to name that
 * task by its id.
 */
async function submitChunk(
  io: Io,
  client: TaskClient,
  { chunk, lines, outcomes }: BatchProgress,
  retries: number,
  sleep: (ms: number) => Promise<void>,
): Promise<void> {
  let pending = chunk;
  for (let attempt = 1; pending.length > 0; attempt++) {
    const call = prepareCall(pending, lines, outcomes);
    for (const outcome of call.refused) outcomes.set(outcome.line, outcome);
    if (call.send.length === 0) return;
    let answered: LineOutcome[];
    try {
      const response = await client.submitTasks({ tasks: call.requests }, { timeoutMs: UNARY_TIMEOUT_MS });
      answered = call.send.map((line, i) => outcomeOf(line, response.outcomes[i]?.outcome));
    } catch (error) {
      if (!isRetryableSubmitError(error)) throw error;
      const waitMs = rateLimitWaitMs(error);
      if (waitMs !== undefined) {
        // Refused whole, nothing taken: the same tasks again once the caller's tokens are due.
        if (attempt > retries) throw error;
        printRetry(io, { error, attempt: attempt + 1, attempts: retries + 1, delayMs: waitMs });
        await sleep(waitMs);
        continue;
      }
      const { rawMessage } = ConnectError.from(error);
      answered = call.send.map((line) => ({ line: line.line, error: { code: Code.Unavailable, message: rawMessage } }));
    }
    const unavailable = new Set(
      answered.filter((o) => "error" in o && o.error.code === Code.Unavailable).map((o) => o.line),
    );
    const final = attempt > retries;
    for (const outcome of answered) if (final || !unavailable.has(outcome.line)) outcomes.set(outcome.line, outcome);
    if (unavailable.size === 0 || final) return;
    pending = call.send.filter((line) => unavailable.has(line.line));
    const delayMs = retryDelayMs(attempt);
    const first = answered.find((o) => unavailable.has(o.line));
    const reason = first && "error" in first ? first.error.message : "unavailable";
    printRetry(io, {
      error: new ConnectError(`${unavailable.size} task(s) not taken: ${reason}`, Code.Unavailable),
      attempt: attempt + 1,
      attempts: retries + 1,
      delayMs,
    });
    await sleep(delayMs);
  }
}

/**
 * The requests of one call: each line's earlier tasks (`after`, places in the file) become places in this call when
 * they are sent with it, or ids (depends_on) when an earlier call accepted them. A line naming one that was refused
 * (or never sent) is refused here and not sent, as the gateway would refuse it: FAILED_PRECONDITION, or UNAVAILABLE
 * when that one was not attempted.
 */
export function prepareCall(
  pending: readonly BatchLine[],
  lines: readonly BatchLine[],
  outcomes: ReadonlyMap<number, LineOutcome>,
): { send: BatchLine[]; requests: SubmitTaskRequest[]; refused: LineOutcome[] } {
  const send: BatchLine[] = [];
  const requests: SubmitTaskRequest[] = [];
  const refused: LineOutcome[] = [];
  const placeInCall = new Map<number, number>(); // line number → index in this call
  for (const line of pending) {
    const dependsOn = [...line.request.dependsOn];
    const dependsOnBatchItems: number[] = [];
    let refusal: LineOutcome | undefined;
    for (const [k, place] of line.after.entries()) {
      const dependency = lines[place] as BatchLine;
      const inCall = placeInCall.get(dependency.line);
      const known = outcomes.get(dependency.line);
      if (inCall !== undefined) dependsOnBatchItems.push(inCall);
      else if (known && "taskId" in known) dependsOn.push(known.taskId);
      else {
        refusal = { line: line.line, error: dependencyRefusal(k, dependency.line, known) };
        break;
      }
    }
    if (refusal) {
      refused.push(refusal);
      continue;
    }
    placeInCall.set(line.line, send.length);
    send.push(line);
    requests.push({ ...line.request, dependsOn, dependsOnBatchItems });
  }
  return { send, requests, refused };
}

/** Why a line is not sent: the task on `dependencyLine` it waits for was refused (`known`) or never sent. */
function dependencyRefusal(k: number, dependencyLine: number, known: LineOutcome | undefined) {
  const field = `dependsOnBatchItems[${k}]`;
  if (!known || !("error" in known)) {
    return { code: Code.FailedPrecondition, message: `${field}: the task on line ${dependencyLine} was not sent` };
  }
  const { code, message } = known.error;
  if (code === Code.Unavailable || code === Code.Canceled) {
    return {
      code,
      message: `not attempted: ${field}: the task on line ${dependencyLine} was not accepted (${message})`,
    };
  }
  return {
    code: Code.FailedPrecondition,
    message: `${field}: the task on line ${dependencyLine} was refused (${message}), so this one could never run`,
  };
}

function outcomeOf({ line, generatedKey }: BatchLine, outcome: SubmitTaskOutcome["outcome"] | undefined): LineOutcome {
  if (outcome?.case === "accepted") {
    // A key made for this run can only have been used by this run's earlier attempt: not a duplicate to report.
    return { line, taskId: outcome.value.taskId, deduplicated: outcome.value.deduplicated && !generatedKey };
  }
  if (outcome?.case === "error") {
    // The gateway names the task by its place in the call ("tasks[3]: …"); the line number says it here.
    return { line, error: { code: outcome.value.code, message: outcome.value.message.replace(/^tasks\[\d+\]: /, "") } };
  }
  return { line, error: { code: Code.Internal, message: "the gateway answered no outcome for this task" } };
}

function report(
  io: Io,
  globals: { json: boolean; addr: string },
  lines: BatchLine[],
  outcomes: Map<number, LineOutcome>,
) {
  let accepted = 0;
  let deduplicated = 0;
  let firstRefused: LineOutcome | undefined;
  for (const { line } of lines) {
    const outcome = outcomes.get(line) as LineOutcome;
    if ("taskId" in outcome) {
      accepted++;
      if (outcome.deduplicated) deduplicated++;
      println(io.stdout, globals.json ? JSON.stringify(outcome) : outcome.taskId);
    } else {
      firstRefused ??= outcome;
      const { code, message } = outcome.error;
      println(
        io.stdout,
        globals.json
          ? JSON.stringify({ line, error: { code: codeName(code), message } })
          : `error ${codeName(code)}: line ${line}: ${message}`,
      );
    }
  }
  const refused = lines.length - accepted;
  println(
    io.stderr,
    `${accepted} accepted${deduplicated ? ` (${deduplicated} deduplicated: their keys were used before)` : ""}` +
      (refused ? `, ${refused} refused` : ""),
  );
  if (!firstRefused || !("error" in firstRefused)) return ExitCode.Ok;
  return describeError(new ConnectError(firstRefused.error.message, firstRefused.error.code), globals.addr).exitCode;
}

/** gRPC's name for a code, as other gRPC tools print it: INVALID_ARGUMENT, UNAVAILABLE. */
export function codeName(code: Code): string {
  const name = Code[code];
  return name ? name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase() : String(code);
}
