/** The built-in services, in the order their claims are listed. Later services add themselves here. */
import type { ServiceDefinition } from "../router/service.js";
import { ARCH_SERVICE } from "./arch/arch.js";
import { HYP_INFO_SERVICE } from "./hyp-info/hyp-info.js";

export const STANDARD_SERVICES: readonly ServiceDefinition[] = [ARCH_SERVICE, HYP_INFO_SERVICE];
