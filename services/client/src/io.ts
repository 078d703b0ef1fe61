/** Where a command writes. The CLI passes the real process streams; tests pass string collectors. */
export interface Output {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
  rows?: number;
}

export interface Io {
  stdout: Output;
  stderr: Output;
  env: NodeJS.ProcessEnv;
}

export function println(output: Output, text = ""): void {
  output.write(`${text}\n`);
}
