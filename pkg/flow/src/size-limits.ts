/**
 * Size bounds of the free-form parts of a message, in bytes of their JSON. nats-server accepts bodies up to 1 MB, so
 * without them a body just under that (a runaway payload, a poison message) would pass validation and be carried,
 * stored and copied into Redis by every stage. The gateway's own limit (GATEWAY_MAX_PAYLOAD_BYTES, 64 KiB by
 * default) is lower; these are the ceiling any producer must respect.
 * Its own module, without dependencies: the worker's handler threads check progress reports against it without
 * loading the schemas (@tm/flow/size-limits).
 */
export const SIZE_LIMITS = {
  payloadBytes: 256 * 1024,
  outputBytes: 256 * 1024,
  enrichmentBytes: 16 * 1024,
  auditDetailBytes: 16 * 1024,
  deadLetterMessageBytes: 64 * 1024,
  deadLetterRawChars: 16 * 1024,
  metadataEntries: 64,
  /** A progress report's message (characters) and details (bytes of JSON): shown live, stored with the status. */
  progressMessageChars: 1024,
  progressDetailsBytes: 4 * 1024,
} as const;
