import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, expect, test } from "vitest";
import { createLogger } from "../src/logger.js";
import { ReloadingFile } from "../src/reloading-file.js";

const dir = mkdtempSync(join(tmpdir(), "tm-reloading-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A logger whose lines the test reads. */
function recordingLogger() {
  const lines: Array<{ msg: string }> = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  return { lines, log: createLogger("test", "info", destination) };
}

/** Only numbers: anything else is refused, naming it. */
const parse = (text: string) => {
  if (!/^\d+\n?$/.test(text)) throw new Error(`not a number: ${JSON.stringify(text)}`);
  return Number(text);
};

test("reads the file again once it changed, and keeps what it held when the new contents cannot be taken", async () => {
  const path = join(dir, "value");
  writeFileSync(path, "1\n");
  const { lines, log } = recordingLogger();
  const loaded: number[] = [];
  const file = await ReloadingFile.open(path, {
    name: "TEST_FILE",
    parse,
    log,
    checkIntervalMs: 0,
    onLoad: (value) => loaded.push(value),
  });
  expect(await file.current()).toBe(1);
  writeFileSync(path, "22\n"); // another size: a change within the mtime's resolution is still seen
  expect(await file.current()).toBe(22);
  writeFileSync(path, "half-writ");
  expect(await file.current()).toBe(22);
  expect(lines.some((line) => line.msg === "could not reload TEST_FILE; keeping what it held before")).toBe(true);
  rmSync(path);
  expect(await file.current()).toBe(22);
  writeFileSync(path, "333\n");
  expect(await file.current()).toBe(333);
  expect(loaded).toEqual([1, 22, 333]);
});

test("checks at most every interval", async () => {
  const path = join(dir, "slow");
  writeFileSync(path, "1\n");
  const file = await ReloadingFile.open(path, { name: "TEST_FILE", parse, log: recordingLogger().log });
  writeFileSync(path, "22\n");
  // The default interval (2 s) has not passed since the first read.
  expect(await file.current()).toBe(1);
});

test("a missing file, or contents it cannot take, stop the open naming the file", async () => {
  const log = recordingLogger().log;
  await expect(ReloadingFile.open(join(dir, "nope"), { name: "TEST_FILE", parse, log })).rejects.toThrow(
    `TEST_FILE ${join(dir, "nope")}: cannot read it (ENOENT)`,
  );
  const path = join(dir, "bad");
  writeFileSync(path, "x");
  await expect(ReloadingFile.open(path, { name: "TEST_FILE", parse, log })).rejects.toThrow('not a number: "x"');
});
