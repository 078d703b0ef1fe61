/**
 * ManagedProcess's log directory (TM_TEST_LOG_DIR): every line a process writes, on stdout and stderr, lands
 * time-stamped in its own file, one file per start, so an intermittent failure can be read afterwards in full.
 */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManagedProcess } from "@tm/testkit";
import { afterEach, expect, test } from "vitest";

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

// Writes one line to each stream, with more lines than keepLines keeps, and exits.
const SCRIPT = `for (let i = 0; i < 50; i++) console.log("out " + i); console.error("err line"); process.exit(3)`;

test("every line of stdout and stderr is written, time-stamped, to <dir>/<name>-<pid>.log, one file per start", async () => {
  dir = await mkdtemp(join(tmpdir(), "tm-process-log-"));
  const child = new ManagedProcess({
    name: "talker",
    command: process.execPath,
    args: ["-e", SCRIPT],
    keepLines: 5,
    logDir: dir,
  });
  child.start();
  const firstPid = child.pid;
  expect(await child.exited()).toBe(3);
  child.start();
  const secondPid = child.pid;
  await child.exited();

  const files = (await readdir(dir)).sort();
  expect(files).toEqual([`talker-${firstPid}.log`, `talker-${secondPid}.log`].sort());
  // The stream ends on "close", after the output has arrived: wait for the file to hold all of it.
  const text = await waitForContent(join(dir, `talker-${firstPid}.log`), (t) => t.split("\n").length > 51);
  const lines = text.trimEnd().split("\n");
  expect(lines).toHaveLength(51);
  for (const line of lines) expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (out \d+|err line)$/);
  expect(lines.filter((l) => l.endsWith(" out 0") || l.endsWith(" out 49"))).toHaveLength(2);
  // The in-memory tail still keeps only keepLines.
  expect(child.output.length).toBeLessThanOrEqual(5);
});

test("TM_TEST_LOG_DIR is the default directory (how a whole suite run keeps every process's output)", async () => {
  dir = await mkdtemp(join(tmpdir(), "tm-process-log-"));
  const saved = process.env.TM_TEST_LOG_DIR;
  process.env.TM_TEST_LOG_DIR = dir;
  try {
    const child = new ManagedProcess({ name: "from-env", command: process.execPath, args: ["-e", SCRIPT] });
    child.start();
    await child.exited();
    const text = await waitForContent(join(dir, `from-env-${child.pid}.log`), (t) => t.split("\n").length > 51);
    expect(text).toMatch(/Z out 49\n/);
  } finally {
    if (saved === undefined) delete process.env.TM_TEST_LOG_DIR;
    else process.env.TM_TEST_LOG_DIR = saved;
  }
});

async function waitForContent(file: string, done: (text: string) => boolean): Promise<string> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const text = await readFile(file, "utf8").catch(() => "");
    if (done(text)) return text;
    if (Date.now() > deadline) throw new Error(`${file} incomplete after 5 s:\n${text}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
