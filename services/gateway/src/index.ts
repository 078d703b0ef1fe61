import { runService } from "@tm/kit";
import { gateway } from "./service.js";

runService(gateway);
