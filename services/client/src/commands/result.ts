import { CliError, ExitCode, isConnectionFailure } from "../exit-codes.js";
import { type Io, println } from "../io.js";

/** Reads GET <result-store>/results/<id>; the result store is plain HTTP, not behind the gateway. */
export async function resultCommand(io: Io, baseUrl: string, taskId: string, json: boolean): Promise<ExitCode> {
  const url = `${baseUrl}/results/${encodeURIComponent(taskId)}`;
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  } catch (error) {
    if (isConnectionFailure(error) || (error as Error).name === "TimeoutError") {
      throw new CliError(
        `cannot reach the result store at ${baseUrl}: is the stack running? (pnpm start; or set RESULT_STORE_URL)`,
        ExitCode.Unavailable,
      );
    }
    throw error;
  }
  const text = await response.text();
  if (response.status === 404)
    throw new CliError(`no result for task ${taskId} (unknown, or not finished yet)`, ExitCode.NotFound);
  if (response.status === 400) throw new CliError(`rejected by the result store: ${errorText(text)}`, ExitCode.Usage);
  if (response.status === 503)
    throw new CliError(`the result store is unavailable: ${errorText(text)}`, ExitCode.Unavailable);
  if (!response.ok)
    throw new CliError(`result store error (HTTP ${response.status}): ${errorText(text)}`, ExitCode.ServerError);
  println(io.stdout, json ? JSON.stringify(JSON.parse(text)) : JSON.stringify(JSON.parse(text), null, 2));
  return ExitCode.Ok;
}

function errorText(body: string): string {
  try {
    const parsed = JSON.parse(body) as { message?: unknown; error?: unknown };
    return String(parsed.message ?? parsed.error ?? body);
  } catch {
    return body || "(empty body)";
  }
}
