import { runService } from "@tm/kit";
import { scheduler } from "./service.js";

runService(scheduler);
