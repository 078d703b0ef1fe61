/** The ConnectError a validation throws (a test helper shared by the gateway's unit tests). */
import { ConnectError } from "@connectrpc/connect";

export function rejection(run: () => unknown): ConnectError {
  try {
    run();
  } catch (error) {
    if (error instanceof ConnectError) return error;
    throw error;
  }
  throw new Error("expected a rejection");
}
