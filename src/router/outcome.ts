/**
 * What happens to the trapping vCPU after a call. The router returns one of these; the machine backend
 * applies it (the scripted vCPU here, the EL2 shim for QEMU guests).
 */
import { EC_SMC32, EC_SMC64, ESR_IL } from "../smccc/esr.js";

/** Result registers written; resume after the instruction. */
export const OUTCOME_RETURN = 0;
/** Inject an UNDEFINED exception at the instruction; registers unchanged (Xen's answer to a non-zero immediate). */
export const OUTCOME_UNDEF = 1;
/** Skip the instruction without a call: an AArch32 SMC whose condition failed (Arm ARM D1.17.2). */
export const OUTCOME_SKIP = 2;
/** The vCPU does not resume from this call (CPU_OFF, SYSTEM_OFF, power-down suspend): the service told the machine what happens instead. */
export const OUTCOME_HALT = 3;
/** Not an SMC or HVC trap: the backend stops the VM with a message. */
export const OUTCOME_BAD_TRAP = 4;
/** The handler failed; the guest got -1 (NOT_SUPPORTED) and the error was reported. Resumes like RETURN. */
export const OUTCOME_ERROR = 5;

/**
 * How far the PC moves after a call (R10). A trapped SMC is a trap, not an SMC exception, so ELR_EL2 holds
 * the SMC itself and must move past it (KVM kvm_incr_pc, Xen advance_pc). An HVC is a real exception:
 * ELR already points after it.
 */
export function pcAdvance(esr: number, outcome: number): number {
  if (outcome !== OUTCOME_RETURN && outcome !== OUTCOME_SKIP && outcome !== OUTCOME_ERROR) return 0;
  const ec = esr >>> 26;
  if (ec !== EC_SMC64 && ec !== EC_SMC32) return 0;
  return (esr & ESR_IL) !== 0 ? 4 : 2;
}
