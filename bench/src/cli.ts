/** `pnpm bench`: parses flags, runs the benchmark, prints the tables and writes the JSON. */
import { join } from "node:path";
import { REPO_ROOT } from "@tm/testkit";
import { parseArgs, USAGE } from "./args.js";
import { renderReport, writeResult } from "./report.js";
import { runBench } from "./run.js";
import { SIZES } from "./sizes.js";

async function main() {
  const options = parseArgs(process.argv.slice(2), join(REPO_ROOT, "bench-results"));
  if (options.help) {
    console.log(USAGE);
    return;
  }
  const result = await runBench({
    sizeName: options.size,
    size: SIZES[options.size],
    only: options.only,
    workers: options.workers,
    gateways: options.gateways,
    scaling: options.scaling,
    taskTimeoutMs: 30_000,
    log: (line) => console.error(`[bench] ${line}`),
  });
  console.log(renderReport(result));
  console.log(`\nJSON: ${writeResult(result, options.out)}`);
}

main().then(
  // The clients' sockets may keep the loop alive after everything is stopped; the run is over.
  () => process.exit(0),
  (error) => {
    console.error(`bench failed: ${(error as Error).message ?? error}`);
    process.exit(1);
  },
);
