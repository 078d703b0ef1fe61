/**
 * taskctl's exit codes and the mapping from errors to them, so scripts can tell "the task failed" from "the
 * gateway is down" from "you typed it wrong".
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { GatewayOutageError, isConnectionFailure } from "@tm/proto";

export { isConnectionFailure };

export const ExitCode = {
  Ok: 0,
  /** A watched task ended FAILED or CANCELLED (or the demo did not end as expected). */
  TaskFailed: 1,
  /** Bad command line: unknown flag, bad value, malformed JSON payload; or the server said INVALID_ARGUMENT. */
  Usage: 2,
  NotFound: 3,
  /** The server could not be reached or answered UNAVAILABLE / did not answer in time. */
  Unavailable: 4,
  ServerError: 5,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** A mistake on the command line; its message names the problem. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** A failure with a message meant for the user and the exit code that goes with it. */
export class CliError extends Error {
  override readonly name = "CliError";
  constructor(
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message);
  }
}

/** Node's codes for a TLS handshake that failed: a certificate not trusted, expired or for another name, or the
 *  server's alert (it asked for a client certificate). */
const TLS_ERROR_CODE = /CERT|SSL|TLS/;

/** The TLS failure's message when the error (or one of its causes) is one, else undefined. */
export function tlsFailureOf(error: unknown): string | undefined {
  for (let current = error, depth = 0; current && depth < 6; depth++) {
    const { code, message } = current as { code?: unknown; message?: unknown };
    if (typeof code === "string" && TLS_ERROR_CODE.test(code)) return typeof message === "string" ? message : code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

export function unreachableMessage(addr: string): string {
  return `cannot reach the gateway at ${addr}: is the stack running? (pnpm start)`;
}

/** Maps any error thrown by a command to what the user sees and the exit code. */
export function describeError(error: unknown, addr: string): { exitCode: ExitCode; message: string } {
  if (error instanceof UsageError) return { exitCode: ExitCode.Usage, message: error.message };
  if (error instanceof CliError) return { exitCode: error.exitCode, message: error.message };
  if (error instanceof GatewayOutageError) return { exitCode: ExitCode.Unavailable, message: error.message };
  const tlsFailure = tlsFailureOf(error);
  if (tlsFailure !== undefined) {
    return {
      exitCode: ExitCode.Unavailable,
      message: `the TLS connection to ${addr} failed: ${tlsFailure} (--tls-ca-file: the CA that signed its certificate; --tls-cert-file and --tls-key-file: a client certificate it asks for)`,
    };
  }
  if (error instanceof ConnectError) {
    switch (error.code) {
      case Code.InvalidArgument:
        return { exitCode: ExitCode.Usage, message: `rejected by the gateway: ${error.rawMessage}` };
      case Code.NotFound:
        return { exitCode: ExitCode.NotFound, message: `not found: ${error.rawMessage}` };
      case Code.Unavailable:
        return {
          exitCode: ExitCode.Unavailable,
          message: isConnectionFailure(error)
            ? unreachableMessage(addr)
            : `the gateway at ${addr} is unavailable: ${error.rawMessage}`,
        };
      case Code.FailedPrecondition:
        return { exitCode: ExitCode.ServerError, message: error.rawMessage };
      case Code.AlreadyExists:
        // Refused as asked (a schedule's id is taken), as a refused replay or requeue exits 1.
        return { exitCode: ExitCode.TaskFailed, message: error.rawMessage };
      case Code.PermissionDenied:
        return {
          exitCode: ExitCode.ServerError,
          message: `permission denied: ${error.rawMessage} (the gateway's operators grant it)`,
        };
      case Code.Unauthenticated:
        return {
          exitCode: ExitCode.ServerError,
          message: `not authenticated: ${error.rawMessage} (pass --api-key or set TASKCTL_API_KEY)`,
        };
      case Code.DeadlineExceeded:
        return { exitCode: ExitCode.Unavailable, message: `the gateway at ${addr} did not answer in time` };
      default:
        return { exitCode: ExitCode.ServerError, message: `server error (${Code[error.code]}): ${error.rawMessage}` };
    }
  }
  if (isConnectionFailure(error)) return { exitCode: ExitCode.Unavailable, message: unreachableMessage(addr) };
  return { exitCode: ExitCode.ServerError, message: `unexpected error: ${(error as Error)?.message ?? error}` };
}
