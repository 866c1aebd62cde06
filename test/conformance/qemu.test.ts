// The conformance suite from real EL1 code: the bare-metal guest under QEMU and the EL2 shim, every PSCI
// version, AArch64 and AArch32 (A32) callers, both conduits.
import { qemuUnavailable } from "../../src/machine/qemu/paths.js";
import { qemuBackend } from "./qemu.js";
import { ALL_PARAMS, conformanceSuite } from "./suite.js";

if (qemuUnavailable()) throw new Error(`QEMU tests need QEMU: ${qemuUnavailable()}`);
conformanceSuite(qemuBackend, ALL_PARAMS, { concurrent: true });
