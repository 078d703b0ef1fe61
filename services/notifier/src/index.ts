import { runService } from "@tm/kit";
import { notifier } from "./service.js";

runService(notifier);
