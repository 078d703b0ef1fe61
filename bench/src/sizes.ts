/** How much work each phase does. "small" is sized for CI (< 60 s in all); "medium" is what the docs quote. */
export interface SizeProfile {
  /** Tasks run before measuring, so connections, JIT and consumers are warm. */
  warmup: number;
  /** Tasks in the closed-loop (saturation) phase. */
  saturationTasks: number;
  /** Tasks in flight during the closed loop. */
  inFlight: number;
  /** Target length of each open-loop phase; its task count is rate × seconds, clamped to [min, max]. */
  openLoopSeconds: number;
  openLoopMinTasks: number;
  openLoopMaxTasks: number;
  /** Tasks run one at a time (nothing else in flight): each system's latency floor on this machine. */
  oneAtATimeTasks: number;
}

export const SIZES = {
  small: {
    warmup: 20,
    saturationTasks: 300,
    inFlight: 64,
    openLoopSeconds: 2,
    openLoopMinTasks: 20,
    openLoopMaxTasks: 200,
    oneAtATimeTasks: 20,
  },
  medium: {
    warmup: 200,
    saturationTasks: 3000,
    inFlight: 128,
    openLoopSeconds: 10,
    openLoopMinTasks: 100,
    openLoopMaxTasks: 5000,
    oneAtATimeTasks: 200,
  },
  large: {
    warmup: 500,
    saturationTasks: 20000,
    inFlight: 256,
    openLoopSeconds: 30,
    openLoopMinTasks: 500,
    openLoopMaxTasks: 30000,
    oneAtATimeTasks: 500,
  },
} satisfies Record<string, SizeProfile>;

export type SizeName = keyof typeof SIZES;

/** The offered rates of the open-loop phases, as fractions of the reference peak. */
export const OPEN_LOOP_FRACTIONS = [0.25, 0.5, 0.75] as const;

export function openLoopTasks(size: SizeProfile, ratePerSec: number): number {
  const wanted = Math.round(ratePerSec * size.openLoopSeconds);
  return Math.min(size.openLoopMaxTasks, Math.max(size.openLoopMinTasks, wanted));
}
