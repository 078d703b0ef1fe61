import { runService } from "@tm/kit";
import { resultStore } from "./service.js";

runService(resultStore);
