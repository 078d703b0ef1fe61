/**
 * The key the worker submits its handlers' child tasks with: WORKER_GATEWAY_API_KEY, read at start, or
 * WORKER_GATEWAY_API_KEY_FILE, a file read again when it changes (a Kubernetes Secret mounted as a directory), so that
 * the key rotates without a restart, as the gateways' own key file does.
 */
import { ConfigError, type Logger, ReloadingFile } from "@tm/kit";

/** The key as a file holds it: its one line that is neither blank nor a `#` comment, without spaces. */
export function parseGatewayKeyFile(text: string, path: string): string {
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
  if (lines.length === 0) throw new Error(`WORKER_GATEWAY_API_KEY_FILE ${path} is empty: it must hold the key`);
  const [key] = lines as [string];
  if (lines.length > 1 || /\s/.test(key))
    throw new Error(`WORKER_GATEWAY_API_KEY_FILE ${path} must hold one key (one line, without spaces)`);
  return key;
}

/** The key, a function reading the file's current one, or undefined without either setting; a ConfigError for both
 *  settings, or for a file that cannot be read or holds no key. */
export async function gatewayApiKey(
  config: { WORKER_GATEWAY_API_KEY?: string | undefined; WORKER_GATEWAY_API_KEY_FILE?: string | undefined },
  log: Logger,
): Promise<string | (() => Promise<string>) | undefined> {
  const { WORKER_GATEWAY_API_KEY: key, WORKER_GATEWAY_API_KEY_FILE: path } = config;
  if (key && path) {
    throw new ConfigError("set one of WORKER_GATEWAY_API_KEY and WORKER_GATEWAY_API_KEY_FILE, not both");
  }
  if (!path) return key || undefined;
  try {
    const file = await ReloadingFile.open(path, {
      name: "WORKER_GATEWAY_API_KEY_FILE",
      parse: (text) => parseGatewayKeyFile(text, path),
      log,
      onLoad: () => log.info({ path }, "gateway API key loaded"),
    });
    return () => file.current();
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
}
