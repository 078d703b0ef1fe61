import { runService } from "@tm/kit";
import { enricher } from "./service.js";

runService(enricher);
