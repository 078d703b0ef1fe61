/** The service definitions this runner can start, by the name TM_SERVICES uses. */
import { audit } from "@tm/audit";
import { deadletter } from "@tm/deadletter";
import { enricher } from "@tm/enricher";
import { gateway } from "@tm/gateway";
import { ingest } from "@tm/ingest";
import type { AnyServiceDefinition } from "@tm/kit";
import { notifier } from "@tm/notifier";
import { resultStore } from "@tm/result-store";
import { scheduler } from "@tm/scheduler";
import { worker } from "@tm/worker";
import type { CombinableService } from "./selection.js";

export const DEFINITIONS: Record<CombinableService, AnyServiceDefinition> = {
  gateway,
  enricher,
  ingest,
  scheduler,
  worker,
  "result-store": resultStore,
  notifier,
  audit,
  deadletter,
};
