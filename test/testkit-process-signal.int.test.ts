/**
 * ManagedProcess's children die with the test process that owns them, also when that process is ended by a signal
 * (a cancelled run, a worker torn down), which emits no "exit" event under Node's default handlers: otherwise each
 * such run would leave its nats-server, redis-server and services running.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { waitFor } from "@tm/testkit";
import { afterEach, expect, test } from "vitest";

// The built kit, as a spawned Node process loads it (the suite builds first).
const KIT = fileURLToPath(new URL("../pkg/testkit/dist/process.js", import.meta.url));
const OWNER = `
import { ManagedProcess } from ${JSON.stringify(KIT)};
const child = new ManagedProcess({ name: "sleeper", command: process.execPath, args: ["-e", "setInterval(() => {}, 1000)"] }).start();
console.log("child " + child.pid);
setInterval(() => {}, 1000);
`;

const leftovers: number[] = [];
afterEach(() => {
  for (const pid of leftovers.splice(0)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function ownerWithChild(): Promise<{ owner: ChildProcess; childPid: number }> {
  const owner = spawn(process.execPath, ["--input-type=module", "-e", OWNER], { stdio: ["ignore", "pipe", "inherit"] });
  const childPid = await new Promise<number>((resolve, reject) => {
    let out = "";
    owner.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const match = /child (\d+)/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    owner.once("exit", (code) => reject(new Error(`the owner exited (${code}) before starting its child`)));
  });
  leftovers.push(childPid, owner.pid!);
  return { owner, childPid };
}

test.each(["SIGTERM", "SIGINT", "SIGHUP"] as const)(
  "%s to the owning process kills its children, and the owner still dies of the signal",
  async (signal) => {
    const { owner, childPid } = await ownerWithChild();
    expect(alive(childPid)).toBe(true);
    const ended = new Promise<NodeJS.Signals | null>((resolve) => owner.once("exit", (_code, sig) => resolve(sig)));
    owner.kill(signal);
    expect(await ended).toBe(signal);
    await waitFor(`child ${childPid} to be gone`, () => !alive(childPid), { timeoutMs: 5_000 });
  },
);
