import { runService } from "@tm/kit";
import { worker } from "./service.js";

runService(worker);
