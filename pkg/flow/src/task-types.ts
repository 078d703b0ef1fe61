/**
 * The task types the pipeline can run (the contract; the worker's handler registry implements exactly these, which
 * its tests check). The gateway rejects others with INVALID_ARGUMENT; ingest checks again because tasks.ingest is
 * open to any publisher, and a task no worker can run should fail there, once, rather than burn every retry in the
 * worker. Adding a type: a handler file in the worker plus its name here.
 */
export const KNOWN_TASK_TYPES = ["echo", "sleep", "checksum", "flaky", "fail"] as const;
export type KnownTaskType = (typeof KNOWN_TASK_TYPES)[number];

export function isKnownTaskType(type: string): type is KnownTaskType {
  return (KNOWN_TASK_TYPES as readonly string[]).includes(type);
}
