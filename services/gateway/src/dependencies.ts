/**
 * A failure of Redis or NATS is the server's problem, not the client's: it is reported as UNAVAILABLE (retryable)
 * rather than INTERNAL/UNKNOWN. ConnectErrors thrown on purpose pass through unchanged.
 */
import { Code, ConnectError } from "@connectrpc/connect";

export async function dependency<T>(name: "Redis" | "NATS", step: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof ConnectError) throw error;
    throw new ConnectError(
      `${name} unavailable while ${step}: ${(error as Error).message}`,
      Code.Unavailable,
      undefined,
      undefined,
      error,
    );
  }
}
