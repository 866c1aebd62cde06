/*
 * Emulated devices (HOST_MMIO): the device window is in no stage-2 table, so a guest access there is a
 * stage-2 data abort. One the syndrome describes (ESR_EL2.ISV = 1: size, direction, register; Arm ARM
 * DDI 0487 D17.2.37) goes to the hypervisor as REQ_MMIO; its reply gives a read's value, and the shim
 * writes the register and steps over the instruction. Anything else in the window (ISV = 0, an AArch32
 * EL1) is refused like any access outside the map (shim.c, stage2_fault).
 */
#include "shim.h"

#define ESR_ISV (1u << 24)
#define ESR_WNR (1u << 6)
#define ESR_IL (1u << 25)
#define GICD_ISPENDR 0x200

static void __attribute__((noreturn)) halt(void)
{
	for (;;)
		__asm__ volatile("wfe");
}

/* Returns 1 when the access was the device window's (handled), 0 when the caller refuses it. */
int mmio_access(struct cpu *c, u64 *frame, u32 esr)
{
	const struct host_page *h = host();
	if (!(h->flags & HOST_MMIO) || !(esr & ESR_ISV) || !(esr & ESR_IL) || (READ_SYSREG(spsr_el2) & PSR_AA32))
		return 0;
	u64 far = READ_SYSREG(far_el2);
	u64 ipa = ((READ_SYSREG(hpfar_el2) >> 4) << 12) | (far & 0xfff);
	if (ipa < MMIO_WINDOW || ipa >= MMIO_WINDOW + MMIO_WINDOW_SIZE)
		return 0;
	u32 srt = (esr >> 16) & 31;
	struct request *q = &c->mb->req;
	zero(q, sizeof(*q));
	q->esr = esr;
	q->elr = READ_SYSREG(elr_el2);
	q->spsr = READ_SYSREG(spsr_el2);
	q->far = ipa;
	q->x[0] = srt == 31 ? 0 : frame[srt];
	struct reply *r = exchange(c, REQ_MMIO);
	/* The only other answer is STOP: the hypervisor is ending the VM. */
	if (r->type != RSP_MMIO)
		halt();
	/* Refused: the hypervisor has counted it already. */
	if (r->flags & MMIO_REFUSE) {
		inject_abort(frame, esr, far);
		return 1;
	}
	if (!(esr & ESR_WNR) && srt != 31)
		frame[srt] = r->x[0];
	/* The device's interrupt: an SPI made pending at the distributor (GICv2 and GICv3 alike). */
	u64 intid = r->x[1];
	if (intid >= 32 && intid < 1020)
		MMIO32(h->gicd + GICD_ISPENDR + 4 * (intid / 32)) = 1u << (intid % 32);
	WRITE_SYSREG(elr_el2, READ_SYSREG(elr_el2) + 4);
	return 1;
}
