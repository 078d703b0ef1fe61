/**
 * Follows one task's status with StreamTaskStatus until it finishes (SUCCEEDED, FAILED or CANCELLED), riding out the
 * gateway going away meanwhile: a rolling deploy, a replica restarting behind Envoy or losing Redis ends every open
 * stream (UNAVAILABLE, a reset connection, or a stream that just ends). The stream is then opened again, after a
 * growing pause, for as long as the outage lasts up to `maxOutageMs` since the gateway last answered; a re-opened
 * stream resends the current status first, and statuses already seen are skipped (isLaterStatus), so `onStatus`
 * hears each one once. Any other error (NOT_FOUND, PERMISSION_DENIED, ...) ends the follow at once.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { isConnectionFailure, retryDelayMs } from "./call-retry.js";
import type { TaskClient } from "./client.js";
import type { TaskStatus } from "./gen/taskmanager/v1/taskmanager_pb.js";
import { isFinishedState, isLaterStatus } from "./status-order.js";

/** How long a follower waits for a gateway that went away, unless told otherwise. */
export const DEFAULT_MAX_OUTAGE_MS = 60_000;

export interface FollowOptions {
  /** Told each status once, in order (the first is the task's status when the follow began). */
  onStatus?: (status: TaskStatus) => void;
  /** Ends the follow; it rejects with the signal's reason. */
  signal?: AbortSignal;
  /** The longest the gateway may stay unreachable or unavailable, counted from its last answer (default 60 s). */
  maxOutageMs?: number;
  /** A gateway that cannot be reached at all before its first answer fails the follow at once (a wrong address),
   *  rather than being waited for (taskctl: a command should say so, not hang). Default false. */
  failFastIfUnreachable?: boolean;
  /** A status stream of the task already open (SubmitTaskAndStreamStatus): followed first. */
  opened?: AsyncIterable<{ status?: TaskStatus | undefined }>;
}

/** The follow gave up: the gateway stayed away longer than `maxOutageMs`. Its cause is the last error seen. */
export class GatewayOutageError extends Error {
  override readonly name = "GatewayOutageError";
  constructor(
    readonly taskId: string,
    readonly outageMs: number,
    options: { cause?: unknown },
  ) {
    super(
      `gave up following task ${taskId}: the gateway was unavailable for ${Math.round(outageMs / 1000)} s`,
      options,
    );
  }
}

/** Resolves with the task's final status. */
export async function followTaskStatus(
  client: TaskClient,
  taskId: string,
  options: FollowOptions = {},
): Promise<TaskStatus> {
  const { onStatus, signal, maxOutageMs = DEFAULT_MAX_OUTAGE_MS, failFastIfUnreachable = false } = options;
  let last: TaskStatus | undefined;
  let answered = false;
  let lastAnswerAt = Date.now();
  const heard = () => {
    answered = true;
    lastAnswerAt = Date.now();
  };
  /** True when the status is new and final. */
  const seen = (status: TaskStatus | undefined): boolean => {
    if (!status || (last && !isLaterStatus(last, status))) return false;
    last = status;
    onStatus?.(status);
    return isFinishedState(status.state);
  };
  let opened = options.opened;
  for (let pause = 1; ; pause++) {
    let cause: unknown;
    try {
      const stream = opened ?? client.streamTaskStatus({ taskId }, { signal });
      opened = undefined;
      for await (const message of stream) {
        heard();
        pause = 0; // the gateway is back: the next outage starts from the shortest pause
        if (seen(message.status)) return last as TaskStatus;
      }
      // The stream ended without a final status (a gateway shutting down gracefully): ask, then stream again.
      const { task } = await client.getTask({ taskId }, { signal });
      heard();
      if (seen(task?.status)) return last as TaskStatus;
      cause = new ConnectError("the status stream ended before the task finished", Code.Unavailable);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (!isOutage(error) || (failFastIfUnreachable && !answered && isConnectionFailure(error))) throw error;
      cause = error;
    }
    const delayMs = retryDelayMs(Math.max(pause, 1));
    const outageMs = Date.now() - lastAnswerAt;
    if (outageMs + delayMs > maxOutageMs) throw new GatewayOutageError(taskId, outageMs, { cause });
    await sleep(delayMs, undefined, { signal }).catch(() => {
      throw signal?.reason;
    });
  }
}

/** The gateway unreachable, or answering that it cannot serve now. */
function isOutage(error: unknown): boolean {
  return isConnectionFailure(error) || (error instanceof ConnectError && error.code === Code.Unavailable);
}
