/**
 * GATEWAY_API_KEYS_FILE, re-read when its mtime (or size) changes, checked at most every `checkIntervalMs`. A
 * Kubernetes Secret mounted as a volume is updated in place (an atomic symlink swap), so keys rotate without a
 * restart. A file that fails to parse after a change is logged and the previous keys stay in force: a half-written
 * file must not lock every client out.
 */
import { readFile, stat } from "node:fs/promises";
import type { Logger } from "@tm/kit";
import { type ApiKeyEntry, parseApiKeyFile } from "./api-keys.js";

export const KEY_FILE_CHECK_INTERVAL_MS = 2_000;

export class ApiKeyFile {
  private entries: ApiKeyEntry[] = [];
  private version = "";
  private checkedAt = 0;
  private pending: Promise<void> | undefined;

  private constructor(
    private readonly path: string,
    private readonly log: Logger,
    private readonly checkIntervalMs: number,
  ) {}

  /** Reads the file once; a missing, unreadable or malformed file stops start-up with the reason. */
  static async open(path: string, log: Logger, checkIntervalMs = KEY_FILE_CHECK_INTERVAL_MS): Promise<ApiKeyFile> {
    const file = new ApiKeyFile(path, log, checkIntervalMs);
    try {
      await file.reload();
    } catch (error) {
      throw new Error(`GATEWAY_API_KEYS_FILE: ${(error as Error).message}`);
    }
    if (file.entries.length === 0) throw new Error(`GATEWAY_API_KEYS_FILE ${path} holds no caller:key entries`);
    return file;
  }

  /** The current entries, after re-reading the file if it changed and the check interval has passed. */
  async current(): Promise<readonly ApiKeyEntry[]> {
    if (Date.now() - this.checkedAt >= this.checkIntervalMs) {
      this.pending ??= this.reload()
        .catch((error: unknown) =>
          this.log.warn(
            { err: error, path: this.path },
            "could not reload the API key file; keeping the previous keys",
          ),
        )
        .finally(() => {
          this.pending = undefined;
        });
      await this.pending;
    }
    return this.entries;
  }

  private async reload(): Promise<void> {
    this.checkedAt = Date.now();
    const info = await stat(this.path);
    const version = `${info.mtimeMs}:${info.size}`;
    if (version === this.version) return;
    const entries = parseApiKeyFile(await readFile(this.path, "utf8"), this.path);
    this.entries = entries;
    this.version = version;
    this.log.info({ path: this.path, callers: entries.length }, "API keys loaded");
  }
}
