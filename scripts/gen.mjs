#!/usr/bin/env node
/**
 * Regenerates the protobuf-es code in pkg/proto/src/gen from proto/ (buf generate, per buf.gen.yaml), then lints
 * the protos (buf lint, per buf.yaml).
 *
 *   node scripts/gen.mjs           regenerate and lint
 *   node scripts/gen.mjs --check   also fail if the generated code differs from what is committed (CI)
 *
 * buf and the protoc-gen-es plugin are devDependencies of pkg/proto; their bin directory goes first on PATH so
 * that buf.gen.yaml's `local: protoc-gen-es` resolves to the pinned plugin rather than anything installed globally.
 *
 * Breaking-change check (root script "proto:breaking"): with the v2 layout the workspace buf.yaml sits at the repo
 * root, so the git input is the repo root itself:
 *   buf breaking --against '.git#branch=main'
 * ('.git#branch=main,subdir=proto' reports the same results; the root form is used because the v2 workspace config
 * lives at the root.) Against the main branch itself it trivially passes; it is meant for feature branches and CI.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const binDir = join(root, "pkg", "proto", "node_modules", ".bin");
const genDir = "pkg/proto/src/gen";
const check = process.argv.includes("--check");

const unknown = process.argv.slice(2).filter((arg) => arg !== "--check");
if (unknown.length > 0) fail(`unknown argument(s): ${unknown.join(" ")}\nusage: node scripts/gen.mjs [--check]`);

const isWindows = process.platform === "win32";
if (!existsSync(join(binDir, isWindows ? "buf.cmd" : "buf"))) {
  fail(`buf not found in ${binDir}; run \`pnpm install\` first`);
}

const env = { ...process.env, PATH: `${binDir}${delimiter}${process.env.PATH ?? ""}` };

run("buf", ["generate"]);
run("buf", ["lint"]);

if (check) {
  const status = spawnSync("git", ["status", "--porcelain", "--", genDir], { cwd: root, encoding: "utf8" });
  if (status.error || status.status !== 0) {
    fail(`git status failed: ${status.error?.message ?? status.stderr.trim()}`);
  }
  const changed = status.stdout.split("\n").filter((line) => line.trim() !== "");
  if (changed.length > 0) {
    fail(
      `generated code in ${genDir} is out of date with proto/ (or was edited by hand):\n` +
        changed.map((line) => `  ${line}`).join("\n") +
        "\nRun `pnpm gen` and commit the result.",
    );
  }
  console.log(`gen:check: ${genDir} is up to date`);
}

/** Runs a command at the repo root with the local bin dir on PATH; exits with its status on failure. */
function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, env, stdio: "inherit", shell: isWindows });
  if (result.error) fail(`${command} ${args.join(" ")}: ${result.error.message}`);
  if (result.status !== 0) {
    fail(`${command} ${args.join(" ")} failed (${result.signal ?? `exit ${result.status}`})`);
  }
}

function fail(message) {
  console.error(`gen: ${message}`);
  process.exit(1);
}
