/*
 * Exceptions the shim injects into the guest's AArch64 EL1, as KVM does (arch/arm64/kvm/inject_fault.c and
 * hyp/exception.c): an UNDEFINED instruction (the hypervisor's UNDEF reply), and a synchronous external
 * abort for an access outside the guest's stage-2 map (what KVM gives an access to an IPA no memory slot
 * backs). The exception is taken to EL1 as the hardware would take it: ESR and FAR, the return state and
 * the vector (Arm ARM DDI 0487 D1.10). An AArch32 EL1 gets neither: shim.c ends the VM instead.
 */
#include "shim.h"

#define EC_UNKNOWN 0x00
#define EC_IABT_LOW 0x20
#define EC_IABT_CUR 0x21
#define EC_DABT_LOW 0x24
#define ESR_IL (1u << 25)
#define FSC_EXTABT 0x10

/* AArch64 EL1: the vector for an exception taken from the state in `spsr` (D1.10.2). */
static void enter_el1_aarch64(u64 elr, u64 spsr)
{
	u64 offset;
	if (spsr & PSR_AA32)
		offset = 0x600; /* lower EL, AArch32 (EL0 of an AArch64 EL1) */
	else if (((spsr >> 2) & 3) == 0)
		offset = 0x400; /* lower EL, AArch64 */
	else
		offset = (spsr & 1) ? 0x200 : 0x000; /* current EL with SP_EL1 / SP_EL0 */
	WRITE_SYSREG(elr_el1, elr);
	WRITE_SYSREG(spsr_el1, spsr);
	WRITE_SYSREG(elr_el2, READ_SYSREG(vbar_el1) + offset);
	WRITE_SYSREG(spsr_el2, 0x3c5); /* EL1h, D, A, I, F masked */
}

/* An UNDEFINED exception at the trapping HVC or SMC (KVM inject_undef64). AArch64 EL1 only (shim.c says why). */
void inject_undef(u64 *frame, u32 esr)
{
	u64 elr = READ_SYSREG(elr_el2);
	u64 spsr = READ_SYSREG(spsr_el2);
	u32 ec = esr >> 26;
	(void)frame;
	if (ec == EC_HVC64)
		elr -= 4; /* an HVC's ELR is the next instruction; a trapped SMC's is the SMC itself */
	WRITE_SYSREG(esr_el1, ((u64)EC_UNKNOWN << 26) | ESR_IL);
	enter_el1_aarch64(elr, spsr);
}

/*
 * A synchronous external abort for a stage-2 fault (KVM inject_abt64), AArch64 EL1 only (shim.c says why):
 * ESR_EL1 = EC 0x21/0x25 (taken from EL1) or 0x20/0x24 (from EL0), IL as trapped, FSC 0x10; FAR_EL1 = the
 * faulting virtual address.
 */
void inject_abort(u64 *frame, u32 esr, u64 far)
{
	u64 elr = READ_SYSREG(elr_el2);
	u64 spsr = READ_SYSREG(spsr_el2);
	u32 ec = esr >> 26;
	int iabt = ec == EC_IABT_LOW;
	u32 from_el0 = ((spsr >> 2) & 3) == 0;
	u32 class = (iabt ? EC_IABT_LOW : EC_DABT_LOW) | (from_el0 ? 0 : 1);
	(void)frame;
	WRITE_SYSREG(esr_el1, ((u64)class << 26) | (esr & ESR_IL) | FSC_EXTABT);
	WRITE_SYSREG(far_el1, far);
	enter_el1_aarch64(elr, spsr);
}
