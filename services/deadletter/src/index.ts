import { runService } from "@tm/kit";
import { deadletter } from "./service.js";

runService(deadletter);
