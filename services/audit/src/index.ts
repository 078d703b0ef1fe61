import { runService } from "@tm/kit";
import { audit } from "./service.js";

runService(audit);
