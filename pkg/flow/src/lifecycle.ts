/**
 * The task lifecycle: one enum (mirroring taskmanager.v1.TaskState), its legal transitions, and the version that
 * orders every status update of a task so that a late or duplicate update can be recognised and ignored.
 */
export const TASK_STATES = ["PENDING", "INGESTED", "SCHEDULED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"] as const;
export type TaskState = (typeof TASK_STATES)[number];

export const TERMINAL_STATES: ReadonlySet<TaskState> = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

export function isTerminal(state: TaskState): boolean {
  return TERMINAL_STATES.has(state);
}

/** Position of each state in the lifecycle; a status never moves to a lower rank. */
const RANK: Record<TaskState, number> = {
  PENDING: 1,
  INGESTED: 2,
  SCHEDULED: 3,
  RUNNING: 4,
  SUCCEEDED: 5,
  FAILED: 6,
  CANCELLED: 7,
};

/**
 * Legal moves. Stages may be skipped (a status event can be lost to a crash between publish and ack and then
 * deduplicated, or overtaken), so any forward move is allowed, RUNNING may repeat (progress, new attempts), and
 * nothing leaves a terminal state. CANCELLED is reachable from every non-terminal state.
 */
export function canTransition(from: TaskState | undefined, to: TaskState): boolean {
  if (from === undefined) return true;
  if (isTerminal(from)) return false;
  if (to === "RUNNING") return from === "RUNNING" || RANK[from] < RANK.RUNNING;
  return RANK[to] > RANK[from];
}

/**
 * The version of a status update: strictly increasing along any legal sequence of updates of one task, computed
 * from the update itself so that independent processes agree without coordinating.
 *
 *   generation (replays of a dead letter) > state rank > attempt > step within the attempt
 *
 * `step` orders updates within one RUNNING attempt: progress 0-100, and 101 for "this attempt failed". Progress reports
 * of one percent (a handler's messages) share a version and are ordered by their number (isLaterStatus).
 */
export interface VersionParts {
  state: TaskState;
  attempt?: number;
  step?: number;
  generation?: number;
}

const STEP_SPAN = 1_000; // steps 0..999 within an attempt
const ATTEMPT_SPAN = 1_000 * STEP_SPAN; // attempts 0..999 within a state
const STATE_SPAN = 10 * ATTEMPT_SPAN; // ranks 1..7 within a generation
const GENERATION_SPAN = 10 * STATE_SPAN;

export const ATTEMPT_FAILED_STEP = 101;

export function statusVersion({ state, attempt = 0, step = 0, generation = 0 }: VersionParts): number {
  const rank = RANK[state];
  const clampedAttempt = Math.min(Math.max(0, Math.trunc(attempt)), 999);
  const clampedStep = Math.min(Math.max(0, Math.trunc(step)), STEP_SPAN - 1);
  // Terminal states ignore attempt/step: the first terminal update wins and later ones are ignored anyway.
  const inState = rank >= RANK.SUCCEEDED ? 0 : clampedAttempt * STEP_SPAN + clampedStep;
  return generation * GENERATION_SPAN + rank * STATE_SPAN + inState;
}

/** The generation a version belongs to (0 for a task never replayed). */
export function generationOf(version: number): number {
  return Math.floor(version / GENERATION_SPAN);
}

/**
 * Whether status `next` comes after `current`: a higher version, or the same version with a later progress report
 * (a handler's message at an unchanged percent carries the version of the report before it, and its own number).
 */
export function isLaterStatus(
  current: { version: number; progressReport?: number },
  next: { version: number; progressReport?: number },
): boolean {
  if (next.version !== current.version) return next.version > current.version;
  return (next.progressReport ?? 0) > (current.progressReport ?? 0);
}

/** Whether an update may replace the current status: later (isLaterStatus) and a legal move (or a new generation). */
export function shouldApply(
  current: { state: TaskState; version: number; progressReport?: number } | undefined,
  next: { state: TaskState; version: number; progressReport?: number },
): boolean {
  if (!current) return true;
  if (!isLaterStatus(current, next)) return false;
  if (generationOf(next.version) > generationOf(current.version)) return true;
  return canTransition(current.state, next.state);
}
