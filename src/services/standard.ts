/** The built-in services. Each claims its function IDs for a VM; the router dispatches to them. */
import type { ServiceDefinition } from "../router/service.js";
import { ARCH_SERVICE } from "./arch/arch.js";
import { HYP_INFO_SERVICE } from "./hyp-info/hyp-info.js";
import { PSCI_SERVICE } from "./psci/psci.js";
import { PVTIME_SERVICE } from "./pvtime/pvtime.js";
import { TRNG_SERVICE } from "./trng/trng.js";

export const STANDARD_SERVICES: readonly ServiceDefinition[] = [ARCH_SERVICE, HYP_INFO_SERVICE, PSCI_SERVICE, TRNG_SERVICE, PVTIME_SERVICE];
