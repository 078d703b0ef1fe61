import { defineConfig } from "vitest/config";

/** System tests that install something process-wide for good, so each runs in a fresh worker. */
const ISOLATED_SYSTEM_FILES = ["test/observability/tracing.int.test.ts"];

/** The tests that start servers (integration and system): one group, sharing three workers. */
const WITH_SERVERS = {
  sequence: { groupOrder: 1 },
  testTimeout: 60_000,
  hookTimeout: 60_000,
  // Each file starts its own nats-server and redis-server, and waits on them, on timers and on child processes: with
  // two workers on two cores a third of the CPU stayed idle. Three finished 9-14 % sooner, locally and on fresh
  // clones (docs/PERFORMANCE.md, session 39), each file slower but none failing. The projects of this group share
  // them. A fourth worker, interleaving the projects' files, or the integration files on their own first did not help:
  // the system files keep both cores busy (docs/PERFORMANCE.md, session 43).
  maxWorkers: 3,
};

// Tests import workspace packages from their TypeScript sources (the "source" export condition), so no build is
// needed for in-process tests. Tests that spawn services as processes run their built dist/ (pnpm build first).
export default defineConfig({
  resolve: { conditions: ["source"] },
  ssr: { resolve: { conditions: ["source"], externalConditions: ["source"] } },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          sequence: { groupOrder: 0 },
          // Pure logic without module state: the files share a worker's module cache instead of each importing
          // everything again (the project ran in 25 s, 24 of them imports and worker start-up; 5 s so).
          isolate: false,
          include: ["{pkg,services}/*/test/**/*.unit.test.ts", "test/**/*.unit.test.ts"],
        },
      },
      {
        extends: true,
        test: {
          name: "integration",
          ...WITH_SERVERS,
          include: ["{pkg,services}/*/test/**/*.int.test.ts"],
          // The packages' files run their services in the test process: a worker keeps its module cache from file to
          // file instead of importing the services again for each (1-1.5 s a file, ~90 s of the suite). What a
          // process holds for good (the telemetry handle, its meter provider) is then shared by the files of a worker:
          // a test reads what its own calls added (web-metrics.int.test.ts).
          isolate: false,
        },
      },
      {
        extends: true,
        test: {
          name: "system",
          ...WITH_SERVERS,
          include: ["test/**/*.int.test.ts"],
          exclude: [...ISOLATED_SYSTEM_FILES],
          // Whole pipelines as processes: what a file runs lives in its child processes, so the files of a worker
          // can share its module cache (importing the test kit, the clients and, for a few, the services' sources
          // again for each file took ~50 s of the suite's worker time, 9 s for test/deployment.int.test.ts alone).
          // A file that changes process.env puts it back.
          isolate: false,
        },
      },
      {
        extends: true,
        test: {
          name: "system-isolated",
          ...WITH_SERVERS,
          include: [...ISOLATED_SYSTEM_FILES],
          // Installs the process's telemetry (its tracer provider, global for good): a fresh worker of its own.
          isolate: true,
        },
      },
    ],
    reporters: process.env.CI ? ["default"] : ["default"],
  },
});
