/**
 * The Nats-Msg-Id of a task's tasks.ingest message: one per generation, so a replay (generation n + 1) is not
 * deduplicated by the stream against the original submission or an earlier replay within the duplicate window.
 */
export function ingestMsgId(taskId: string, generation: number): string {
  return `${taskId}:ingest:${generation}`;
}
