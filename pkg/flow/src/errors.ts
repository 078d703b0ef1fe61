/**
 * A handler failure that retrying cannot fix (a rejected payload, an unknown task type): the message is
 * dead-lettered at once instead of being redelivered.
 */
export class PermanentError extends Error {
  override readonly name = "PermanentError";
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
