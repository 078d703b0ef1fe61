/**
 * The task types the pipeline can run (the worker's handler registry, see the contract). The gateway already
 * rejects others; ingest checks again because tasks.ingest is open to any publisher, and a task no worker can run
 * should fail here, once, rather than wait in a queue and burn every retry in the worker.
 */
export const KNOWN_TASK_TYPES = ["echo", "sleep", "checksum", "flaky", "fail"] as const;
export type KnownTaskType = (typeof KNOWN_TASK_TYPES)[number];

export function isKnownTaskType(type: string): type is KnownTaskType {
  return (KNOWN_TASK_TYPES as readonly string[]).includes(type);
}
