import { runService } from "@tm/kit";
import { ingest } from "./service.js";

runService(ingest);
