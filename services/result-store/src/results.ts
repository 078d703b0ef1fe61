/** The pure parts of GET /results/:id: checking the id and shaping the stored result into the contract's body. */
import { TaskId } from "@tm/flow";
import type { StoredResult } from "@tm/store";

/** The body of GET /results/:id, exactly the contract's fields (the stored record also has durationMs and
 *  generation, which are internal). */
export interface ResultResponse {
  taskId: string;
  type: string;
  output: unknown;
  attempts: number;
  completedAt: string;
}

export interface ErrorBody {
  error: string;
  message: string;
}

export function toResultResponse(stored: StoredResult): ResultResponse {
  return {
    taskId: stored.taskId,
    type: stored.type,
    output: stored.output ?? null,
    attempts: stored.attempts,
    completedAt: stored.completedAt,
  };
}

/** The error body for a malformed id, or undefined when the id is a UUID. */
export function invalidIdProblem(id: string): ErrorBody | undefined {
  return TaskId.safeParse(id).success ? undefined : { error: "invalid_id", message: "id: must be a UUID" };
}

export function notFound(id: string): ErrorBody {
  return { error: "not_found", message: `no result stored for task ${id} (unknown, or not finished yet)` };
}
