/**
 * A task's own limits as taskctl takes them (--attempt-timeout, --max-attempts, --retry-*, --expires-after), and its
 * fairness key (--fairness-key, --fairness-weight), for SubmitTaskRequest and a schedule's task alike (@tm/proto's
 * taskLimitFields). The gateway checks the values and names a field it refuses.
 */
import { taskLimitFields as protoTaskLimitFields, type TaskLimitsMs } from "@tm/proto";

/** --retry-delay, --retry-multiplier, --retry-max-delay, --retry-jitter (unset ones: the gateway's defaults). */
export type RetryBackoffOption = NonNullable<TaskLimitsMs["retryBackoff"]>;

export interface TaskLimitOptions {
  attemptTimeoutMs?: number;
  maxAttempts?: number;
  retryBackoff?: RetryBackoffOption;
  /** --expires-after. */
  expiresAfterMs?: number;
  /** --heartbeat-timeout. */
  heartbeatTimeoutMs?: number;
}

export function taskLimitFields({ attemptTimeoutMs, ...rest }: TaskLimitOptions) {
  return protoTaskLimitFields({ ...rest, ...(attemptTimeoutMs === undefined ? {} : { timeoutMs: attemptTimeoutMs }) });
}

/** SubmitTaskRequest's and ScheduledTask's fairness_key and fairness_weight; no weight given leaves the field unset
 *  (0: the gateway's default, 1). */
export function fairnessFields(fairness: { key: string; weight?: number } | undefined) {
  if (!fairness) return {};
  return { fairnessKey: fairness.key, ...(fairness.weight === undefined ? {} : { fairnessWeight: fairness.weight }) };
}
