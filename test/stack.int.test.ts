/**
 * Smoke test of `pnpm start`: scripts/stack.mjs with STACK_EXIT_AFTER_DEMO=1 starts nats-server, redis-server and
 * every built service, runs `taskctl demo` through the real pipeline, stops everything and exits with the demo's
 * code. Needs `pnpm build` first and the stack's fixed ports (50051, 8080-8088) free. Short FLOW_* retry delays
 * (passed through to the services) keep the demo's `fail` task from taking a minute.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, test } from "vitest";
import { isPortFree, REQUIRED_PORTS } from "../scripts/lib/stack-lib.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));

test("pnpm start runs the demo through every service and stops cleanly", { timeout: 90_000 }, async () => {
  const { NATS_URL: _nats, REDIS_URL: _redis, ...env } = process.env;
  const child = spawn(process.execPath, ["scripts/stack.mjs"], {
    cwd: root,
    env: {
      ...env,
      STACK_EXIT_AFTER_DEMO: "1",
      LOG_LEVEL: "warn",
      FLOW_RETRY_DELAYS_MS: "100,200,300,400,500",
      NO_COLOR: "1",
    },
  });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  const exitCode = await new Promise<number | null>((resolve) => child.on("close", resolve));

  expect(output, output).toContain("all services are ready");
  expect(output).toMatch(/SUCCEEDED +11\n/);
  expect(output).toMatch(/FAILED +1\n/);
  expect(output).toContain("every task ended as expected");
  expect(exitCode, output).toBe(0);
  // Everything it started is gone: the fixed ports are free again.
  for (const { port } of REQUIRED_PORTS) expect(await isPortFree(port), `port ${port}`).toBe(true);
});
