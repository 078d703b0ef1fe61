/**
 * The gateway's authentication and rate-limit variables. Cross-variable rules (api-key mode needs keys, jwt mode
 * needs a secret or a public key) are checked when the guard is built, with a message naming the variables.
 */
import * as z from "zod";

const nonNegativeInt = z.coerce
  .number({ message: "must be a number" })
  .int({ message: "must be an integer" })
  .min(0, { message: "must be >= 0" });

export const authConfigShape = {
  /** "none" is for local development only: production must set api-key or jwt. */
  GATEWAY_AUTH_MODE: z.enum(["none", "api-key", "jwt"]).default("none"),
  /** Comma-separated `caller:key` pairs. */
  GATEWAY_API_KEYS: z.string().optional(),
  /** A file with one `caller:key` per line, re-read when its mtime changes (rotation without restart). */
  GATEWAY_API_KEYS_FILE: z.string().optional(),
  GATEWAY_JWT_SECRET: z.string().optional(),
  /** PEM (SPKI) public key for RS256 tokens; literal `\n` sequences are accepted for one-line env values. */
  GATEWAY_JWT_PUBLIC_KEY: z.string().optional(),
  GATEWAY_JWT_ISSUER: z.string().optional(),
  GATEWAY_JWT_AUDIENCE: z.string().optional(),
  /**
   * Comma-separated callers (api-key caller names, JWT subjects) that may use the AdminService: queue stats, task
   * listing, histories, dead letters and their replay or discard, requeues. With GATEWAY_AUTH_MODE api-key or jwt
   * every other caller is refused it (PERMISSION_DENIED) and keeps the TaskService only.
   */
  GATEWAY_ADMIN_CALLERS: z.string().optional(),
  /** jwt: a token whose `scope` (space-separated) or `scp` (a list) claim holds this value may use the AdminService. */
  GATEWAY_JWT_ADMIN_SCOPE: z.string().optional(),
  /**
   * "caller": each caller sees only its own tasks on the TaskService (GetTask, StreamTaskStatus, CancelTask answer
   * NOT_FOUND for another caller's task) and its idempotency keys are its own; operators (admin callers) see every
   * task. Needs GATEWAY_AUTH_MODE api-key or jwt. "none" (default): a task id is enough to read or cancel a task.
   */
  GATEWAY_TASK_ISOLATION: z.enum(["none", "caller"]).default("none"),
  /**
   * Comma-separated callers (the workers' API key callers, or JWT subjects) whose child tasks (SubmitTaskRequest
   * parent_task_id, a handler's ctx.submitTask) belong to their parent's submitter: its `submitted_by`, with the
   * worker as `submitted_via`. With GATEWAY_TASK_ISOLATION=caller the application that submitted a task then sees the
   * tasks its handler submitted, and the handler's children may wait for that application's tasks. Another caller's
   * children are its own.
   */
  GATEWAY_CHILD_SUBMITTERS: z.string().optional(),
  /** Sustained requests per second per caller; 0 turns rate limiting off. */
  GATEWAY_RATE_LIMIT_PER_SEC: nonNegativeInt.default(100),
  /** Requests a caller may make at once after being idle (the bucket size). */
  GATEWAY_RATE_LIMIT_BURST: nonNegativeInt.min(1, { message: "must be >= 1" }).default(200),
};

export type AuthConfig = z.infer<z.ZodObject<typeof authConfigShape>>;
