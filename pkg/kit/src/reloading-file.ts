/**
 * A file whose contents are read again when it changes (its mtime or size), checked at most every
 * `checkIntervalMs`: a Kubernetes Secret mounted as a volume (not with subPath) is updated in place by the kubelet,
 * so the keys it holds rotate without a restart. A file that cannot be read or parsed after a change is logged and
 * the previous contents stay in force: a half-written file must not lock the process out.
 */
import { readFile, stat } from "node:fs/promises";
import type { Logger } from "./logger.js";

export const FILE_CHECK_INTERVAL_MS = 2_000;

export interface ReloadingFileOptions<T> {
  /** What the file is, for the log lines and errors: "GATEWAY_API_KEYS_FILE". */
  name: string;
  /** The contents as the caller uses them; throws naming the problem for contents it cannot take. */
  parse: (text: string) => T;
  log: Logger;
  checkIntervalMs?: number;
  /** Told each time new contents are taken (the first read included), to log what changed. */
  onLoad?: (value: T) => void;
}

export class ReloadingFile<T> {
  #value!: T;
  #version = "";
  #checkedAt = 0;
  #pending: Promise<void> | undefined;

  private constructor(
    private readonly path: string,
    private readonly options: ReloadingFileOptions<T>,
  ) {}

  /** Reads the file once: a missing or unreadable file rejects naming `name`, the path and the reason; contents
   *  `parse` refuses reject with its error (which names what is wrong). */
  static async open<T>(path: string, options: ReloadingFileOptions<T>): Promise<ReloadingFile<T>> {
    const file = new ReloadingFile(path, options);
    await file.#reload();
    return file;
  }

  /** The current contents, after reading the file again if it changed and the check interval has passed. */
  async current(): Promise<T> {
    if (Date.now() - this.#checkedAt >= (this.options.checkIntervalMs ?? FILE_CHECK_INTERVAL_MS)) {
      this.#pending ??= this.#reload()
        .catch((error: unknown) =>
          this.options.log.warn(
            { err: error, path: this.path },
            `could not reload ${this.options.name}; keeping what it held before`,
          ),
        )
        .finally(() => {
          this.#pending = undefined;
        });
      await this.#pending;
    }
    return this.#value;
  }

  async #reload(): Promise<void> {
    this.#checkedAt = Date.now();
    const unreadable = (error: NodeJS.ErrnoException) => {
      throw new Error(`${this.options.name} ${this.path}: cannot read it (${error.code ?? error.message})`);
    };
    const info = await stat(this.path).catch(unreadable);
    const version = `${info.mtimeMs}:${info.size}`;
    if (version === this.#version) return;
    const value = this.options.parse(await readFile(this.path, "utf8").catch(unreadable));
    this.#value = value;
    this.#version = version;
    this.options.onLoad?.(value);
  }
}
