/*
 * Exceptions the shim injects into the guest's EL1, as KVM does (arch/arm64/kvm/inject_fault.c and
 * hyp/exception.c): an UNDEFINED instruction (the hypervisor's UNDEF reply), and a synchronous external
 * abort for an access outside the guest's stage-2 map (what KVM gives an access to an IPA no memory slot
 * backs). The exception is taken to EL1 exactly as the hardware would take it: ESR/FAR (or DFSR/IFSR and
 * DFAR/IFAR for an AArch32 EL1), the return state, and the vector. Arm ARM DDI 0487 D1.10, G1.12.
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

/*
 * AArch32 EL1 (G1.12): mode `mode`, LR_<mode> = preferred return + `lr_offset`, SPSR_<mode> = CPSR; A and
 * I masked (F too for FIQ, never used here), T from SCTLR.TE, E from SCTLR.EE, IT and J cleared. The
 * banked LRs live in the AArch64 registers: LR_abt = X20, LR_und = X22 (D1.11.3).
 */
#define AA32_MODE_ABT 0x17
#define AA32_MODE_UND 0x1b
static void enter_el1_aarch32(u64 *frame, u32 mode, u64 preferred, u32 lr_offset, u32 vector)
{
	u64 cpsr = READ_SYSREG(spsr_el2);
	u64 sctlr = READ_SYSREG(sctlr_el1);
	u64 base = (sctlr & (1ul << 13)) ? 0xffff0000ul : (READ_SYSREG(vbar_el1) & 0xffffffe0ul);
	u64 next = mode | (1u << 8) | (1u << 7);
	if (sctlr & (1ul << 30))
		next |= 1u << 5; /* T */
	if (sctlr & (1ul << 25))
		next |= 1u << 9; /* E */
	if (mode == AA32_MODE_ABT) {
		WRITE_SYSREG(S3_4_C4_C3_1, cpsr); /* SPSR_abt */
		frame[20] = (u32)(preferred + lr_offset);
	} else {
		WRITE_SYSREG(S3_4_C4_C3_2, cpsr); /* SPSR_und */
		frame[22] = (u32)(preferred + lr_offset);
	}
	WRITE_SYSREG(elr_el2, base + vector);
	WRITE_SYSREG(spsr_el2, next);
}

/* An UNDEFINED exception at the trapping HVC or SMC (KVM inject_undef64 / inject_undef32). */
void inject_undef(u64 *frame, u32 esr)
{
	u64 elr = READ_SYSREG(elr_el2);
	u64 spsr = READ_SYSREG(spsr_el2);
	u32 ec = esr >> 26;
	u32 len = (esr & ESR_IL) ? 4 : 2;
	if (ec == EC_HVC64 || ec == EC_HVC32)
		elr -= len; /* an HVC's ELR is the next instruction; a trapped SMC's is the SMC itself */
	if (spsr & PSR_AA32) {
		/* LR_und = the undefined instruction + 4 (A32) or + 2 (T32). */
		enter_el1_aarch32(frame, AA32_MODE_UND, elr, len, 0x04);
		return;
	}
	WRITE_SYSREG(esr_el1, ((u64)EC_UNKNOWN << 26) | ESR_IL);
	enter_el1_aarch64(elr, spsr);
}

/*
 * A synchronous external abort for a stage-2 fault (KVM inject_abt64 / inject_abt32). AArch64: ESR_EL1 =
 * EC 0x21/0x25 (taken from EL1) or 0x20/0x24 (from EL0), IL as trapped, FSC 0x10; FAR_EL1 = the faulting
 * virtual address. AArch32: DFSR (ESR_EL1) or IFSR (IFSR32_EL2) = 0x210 with LPAE (TTBCR.EAE) else 0x008,
 * DFAR/IFAR (FAR_EL1 low/high) = the address; Data Abort vector 0x10 (LR + 8), Prefetch Abort 0x0C (LR + 4).
 */
void inject_abort(u64 *frame, u32 esr, u64 far)
{
	u64 elr = READ_SYSREG(elr_el2);
	u64 spsr = READ_SYSREG(spsr_el2);
	u32 ec = esr >> 26;
	int iabt = ec == EC_IABT_LOW;
	if (spsr & PSR_AA32) {
		u64 fsr = (READ_SYSREG(tcr_el1) & (1ul << 31)) ? (1u << 9) | FSC_EXTABT : 0x8;
		u64 f = READ_SYSREG(far_el1);
		if (iabt) {
			WRITE_SYSREG(ifsr32_el2, fsr);
			f = (f & 0xfffffffful) | ((far & 0xfffffffful) << 32);
		} else {
			WRITE_SYSREG(esr_el1, fsr);
			f = (f & ~0xfffffffful) | (far & 0xfffffffful);
		}
		WRITE_SYSREG(far_el1, f);
		enter_el1_aarch32(frame, AA32_MODE_ABT, elr, iabt ? 4 : 8, iabt ? 0x0c : 0x10);
		return;
	}
	u32 from_el0 = ((spsr >> 2) & 3) == 0;
	u32 class = (iabt ? EC_IABT_LOW : EC_DABT_LOW) | (from_el0 ? 0 : 1);
	WRITE_SYSREG(esr_el1, ((u64)class << 26) | (esr & ESR_IL) | FSC_EXTABT);
	WRITE_SYSREG(far_el1, far);
	enter_el1_aarch64(elr, spsr);
}
