// `pnpm --filter @tm/bench start`: builds the benchmark and what it imports, tries to build the pipeline's services
// (a service that does not build yet only makes the pipeline phase skip, with a message), then runs dist/cli.js.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const args = process.argv.slice(2).filter((a) => a !== "--");
// The server services are the directories under services/ with a service definition (the rule the deployment test
// uses too), so a new service is built here without being listed; plus services/combined, for --combine.
const SERVICES = [
  ...readdirSync(join(root, "services")).filter((name) =>
    existsSync(join(root, "services", name, "src", "service.ts")),
  ),
  "combined",
];

function pnpm(filters, extra = []) {
  const argv = [...filters.flatMap((f) => ["--filter", f]), ...extra, "run", "build"];
  return spawnSync("pnpm", argv, { cwd: root, stdio: ["ignore", "inherit", "inherit"] }).status === 0;
}

if (!args.includes("--no-build")) {
  if (!pnpm(["@tm/bench..."])) {
    console.error("bench: building @tm/bench and its dependencies failed (see above)");
    process.exit(1);
  }
  const joined = args.join(" ");
  const wantsPipeline = !joined.includes("--only") || joined.includes("pipeline") || joined.includes("--scaling");
  if (
    wantsPipeline &&
    !pnpm(
      SERVICES.map((s) => `@tm/${s}...`),
      ["--no-bail"],
    )
  )
    console.error(
      "bench: some services did not build; the pipeline phase runs only if every dist/bundle/index.js exists",
    );
}

const cli = spawnSync(process.execPath, [join(here, "dist", "cli.js"), ...args.filter((a) => a !== "--no-build")], {
  cwd: root,
  stdio: "inherit",
});
process.exit(cli.status ?? 1);
