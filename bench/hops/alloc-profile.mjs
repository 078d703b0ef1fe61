// Preloaded into every service by `pnpm bench --alloc-profile` (node --import): V8's sampling heap profiler records
// allocations, including the objects the collector has already freed (the garbage is what costs GC time, so the
// default, which keeps only objects still alive, would miss it), and the profile is written when the process exits,
// as Heap.<pid>.heapprofile in TM_ALLOC_PROFILE_DIR (Chrome DevTools: Memory → Load profile).
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { join } from "node:path";

const dir = process.env.TM_ALLOC_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post("HeapProfiler.enable");
  session.post("HeapProfiler.startSampling", {
    // One sample per ~32 KB allocated on average: a few per message, at a cost within the drain's noise.
    samplingInterval: 32 * 1024,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  process.once("exit", () => {
    // A session on the main thread answers synchronously, so the profile is written before the process ends.
    session.post("HeapProfiler.stopSampling", (error, result) => {
      if (error) console.error(`alloc-profile: ${error.message}`);
      else writeFileSync(join(dir, `Heap.${process.pid}.heapprofile`), JSON.stringify(result.profile));
    });
  });
}
