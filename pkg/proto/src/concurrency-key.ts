/**
 * A concurrency key's and limit's form (SubmitTaskRequest.concurrency_key and concurrency_limit), and a fairness key's
 * and weight's (fairness_key and fairness_weight), for the checks the submitting tools make before sending:
 * TaskRequest (TaskManagerClient, ctx.submitTask), taskctl, the console. Pure, so the browser entry has it too. The
 * gateway's checks use the same constants (services/gateway/src/validation.ts).
 */

/** The longest concurrency key a submission may name. */
export const CONCURRENCY_KEY_MAX_CHARS = 128;
/** The highest concurrency limit. */
export const CONCURRENCY_LIMIT_MAX = 1_000;
/** Letters, digits and `_ . : @ / = + -`. */
export const CONCURRENCY_KEY_PATTERN = /^[A-Za-z0-9_.:@/=+-]+$/;

/** What is wrong with a concurrency key, to follow its field's name ("must be …"), or undefined. */
export function concurrencyKeyProblem(key: unknown): string | undefined {
  if (typeof key === "string" && key.length <= CONCURRENCY_KEY_MAX_CHARS && CONCURRENCY_KEY_PATTERN.test(key))
    return undefined;
  const shown =
    typeof key === "string" && key.length > 64 ? `${JSON.stringify(key.slice(0, 64))}…` : JSON.stringify(key);
  return `must be 1 to ${CONCURRENCY_KEY_MAX_CHARS} letters, digits or _ . : @ / = + - (got ${shown})`;
}

/** What is wrong with a concurrency limit, to follow its field's name, or undefined. */
export function concurrencyLimitProblem(limit: unknown): string | undefined {
  if (Number.isSafeInteger(limit) && (limit as number) >= 1 && (limit as number) <= CONCURRENCY_LIMIT_MAX)
    return undefined;
  return `must be a whole number from 1 to ${CONCURRENCY_LIMIT_MAX} (got ${JSON.stringify(limit)})`;
}

/** The highest fairness weight (SubmitTaskRequest.fairness_weight); a fairness key has a concurrency key's form. */
export const FAIRNESS_WEIGHT_MAX = 1_000;

/** What is wrong with a fairness key, to follow its field's name, or undefined: the same form as a concurrency key's. */
export const fairnessKeyProblem = concurrencyKeyProblem;

/** What is wrong with a fairness weight, to follow its field's name, or undefined. */
export function fairnessWeightProblem(weight: unknown): string | undefined {
  if (Number.isSafeInteger(weight) && (weight as number) >= 1 && (weight as number) <= FAIRNESS_WEIGHT_MAX)
    return undefined;
  return `must be a whole number from 1 to ${FAIRNESS_WEIGHT_MAX} (got ${JSON.stringify(weight)})`;
}
