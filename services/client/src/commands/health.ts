import { HealthCheckResponse_ServingStatus, type HealthClient } from "@tm/proto";
import { UNARY_TIMEOUT_MS } from "../connection.js";
import { ExitCode } from "../exit-codes.js";
import { type Io, println } from "../io.js";

/** Checks the overall server status ("" in grpc.health.v1); exit 4 when it is not SERVING. */
export async function healthCommand(io: Io, client: HealthClient, addr: string, json: boolean): Promise<ExitCode> {
  const { status } = await client.check({ service: "" }, { timeoutMs: UNARY_TIMEOUT_MS });
  const name = HealthCheckResponse_ServingStatus[status] ?? String(status);
  println(io.stdout, json ? JSON.stringify({ addr, status: name }) : `${addr} ${name}`);
  return status === HealthCheckResponse_ServingStatus.SERVING ? ExitCode.Ok : ExitCode.Unavailable;
}
