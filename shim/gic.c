/*
 * Waking a sleeping CPU. The guest owns the GIC (its distributor, CPU interface or redistributors are in
 * its stage-2 map, and interrupts go to EL1: HCR_EL2.IMO = 0), so while a CPU waits at EL2 for the
 * hypervisor the shim borrows two of its interrupts and puts everything back before the guest runs again:
 *
 *   - the CPU's doorbell SPI (its virtio transport's line), routed to this CPU;
 *   - the EL2 physical timer (PPI 26, CNTHP), as a bound on the sleep should the doorbell be lost.
 *
 * Both get priority 0x00 and the priority mask is raised to 0x10 for the sleep, so the guest's own pending
 * interrupts (its timer tick, say) neither wake the CPU nor are lost: they stay pending and are taken when
 * the guest runs again. The distributor's enable is global, not per CPU: a CPU that finds it off (a guest
 * that has not set up its GIC yet) switches it on and leaves it on, since another CPU may be asleep on it. WFI wakes on a pending IRQ whatever PSTATE's masks (Arm ARM D1.6.2), and a physical
 * IRQ routed to EL1 is never taken at EL2. GIC: IHI 0048B (GICv2), IHI 0069H (GICv3).
 */
#include "shim.h"

#define PRIO_WAKE 0x00
#define PMR_SLEEP 0x10
#define INTID_HYP_TIMER 26 /* CNTHP: PPI 10 (QEMU virt, ARCH_TIMER_NS_EL2_IRQ) */

/* GICv2 distributor and CPU interface. */
#define GICD_CTLR 0x000
#define GICD_IGROUPR 0x080
#define GICD_ISENABLER 0x100
#define GICD_ICENABLER 0x180
#define GICD_ICPENDR 0x280
#define GICD_IPRIORITYR 0x400
#define GICD_ITARGETSR 0x800
#define GICC_CTLR 0x000
#define GICC_PMR 0x004
#define GICC_RPR 0x014
/* GICv3: distributor routing, and the redistributor's SGI/PPI frame. */
#define GICD_IROUTER 0x6000
#define GICD_CTLR_ENABLE_GRP1 (1u << 1) /* with DS = 1; GICv2: bit 0 enables */
#define GICR_SGI 0x10000
#define GICR_STRIDE 0x20000

#define ICC_PMR_EL1 S3_0_C4_C6_0
#define ICC_IGRPEN1_EL1 S3_0_C12_C12_7
#define ICC_RPR_EL1 S3_0_C12_C11_3

static inline u32 bit(u32 intid) { return 1u << (intid % 32); }
static inline u64 word(u32 intid) { return 4 * (intid / 32); }

static u64 redist_sgi(const struct host_page *h, u32 cpu)
{
	return h->gicc + (u64)cpu * GICR_STRIDE + GICR_SGI;
}

/*
 * At a cold boot, before the guest runs: every doorbell SPI in Group 1 (GICv3; reset leaves Group 0). Done
 * once by the boot CPU because IGROUPR words are shared by 32 interrupts and CPUs arming at the same time
 * would race on them.
 */
void wake_boot(void)
{
	const struct host_page *h = host();
	if (!(h->flags & HOST_GICV3))
		return;
	for (u32 i = 0; i < h->vcpus; i++) {
		u32 spi = h->doorbell_intid + i;
		MMIO32(h->gicd + GICD_IGROUPR + word(spi)) |= bit(spi);
	}
}

/*
 * Arms the two wake sources. With `guest_too` (a wake-up wait for the guest, shim/suspend.c) the guest's
 * own priority mask is kept when it lets more through than PMR_SLEEP, so the guest's interrupts wake the
 * CPU as well; otherwise the mask hides them for the sleep.
 */
void wake_arm(struct cpu *c, struct gic_save *s, int guest_too)
{
	const struct host_page *h = host();
	u32 spi = h->doorbell_intid + c->index;
	u64 d = h->gicd;
	s->dist_ctlr = MMIO32(d + GICD_CTLR);
	if (h->flags & HOST_GICV3) {
		u64 r = redist_sgi(h, c->index);
		/* Group 1 (Linux makes every SPI Group 1 at boot; reset leaves Group 0), routed to this CPU. */
		if (!(MMIO32(d + GICD_IGROUPR + word(spi)) & bit(spi)))
			MMIO32(d + GICD_IGROUPR + word(spi)) |= bit(spi);
		MMIO64(d + GICD_IROUTER + 8ul * spi) = READ_SYSREG(mpidr_el1) & 0xff00ffffffull;
		MMIO8(d + GICD_IPRIORITYR + spi) = PRIO_WAKE;
		MMIO32(d + GICD_ISENABLER + word(spi)) = bit(spi);
		if (!(MMIO32(r + GICD_IGROUPR) & bit(INTID_HYP_TIMER)))
			MMIO32(r + GICD_IGROUPR) |= bit(INTID_HYP_TIMER);
		MMIO8(r + GICD_IPRIORITYR + INTID_HYP_TIMER) = PRIO_WAKE;
		MMIO32(r + GICD_ISENABLER) = bit(INTID_HYP_TIMER);
		if (!(s->dist_ctlr & GICD_CTLR_ENABLE_GRP1))
			MMIO32(d + GICD_CTLR) = s->dist_ctlr | GICD_CTLR_ENABLE_GRP1;
		s->pmr = (u32)READ_SYSREG(ICC_PMR_EL1);
		s->cpu_ctlr = (u32)READ_SYSREG(ICC_IGRPEN1_EL1);
		WRITE_SYSREG(ICC_PMR_EL1, guest_too && s->pmr > PMR_SLEEP ? s->pmr : PMR_SLEEP);
		WRITE_SYSREG(ICC_IGRPEN1_EL1, 1);
	} else {
		u64 cc = h->gicc;
		MMIO8(d + GICD_ITARGETSR + spi) = (u8)(1u << c->index);
		MMIO8(d + GICD_IPRIORITYR + spi) = PRIO_WAKE;
		MMIO32(d + GICD_ISENABLER + word(spi)) = bit(spi);
		/* SGIs and PPIs are banked per CPU in GICv2: these writes touch only this CPU's PPI 26. */
		MMIO8(d + GICD_IPRIORITYR + INTID_HYP_TIMER) = PRIO_WAKE;
		MMIO32(d + GICD_ISENABLER) = bit(INTID_HYP_TIMER);
		if (!(s->dist_ctlr & 1))
			MMIO32(d + GICD_CTLR) = s->dist_ctlr | 1;
		s->pmr = MMIO32(cc + GICC_PMR);
		s->cpu_ctlr = MMIO32(cc + GICC_CTLR);
		MMIO32(cc + GICC_PMR) = guest_too && s->pmr > PMR_SLEEP ? s->pmr : PMR_SLEEP;
		if (!(s->cpu_ctlr & 1))
			MMIO32(cc + GICC_CTLR) = s->cpu_ctlr | 1;
	}
	isb();
}

/*
 * Whether an armed wake source can end a WFI on this CPU at all. The CPU interface signals a pending
 * interrupt only when its group priority is higher (numerically lower) than the running priority, the group
 * priority of the highest-priority active interrupt as the binary point register cut it when that interrupt
 * was acknowledged (IHI 0048B §3.3, "Preemption"; GICC_RPR §4.4.6; IHI 0069H §4.8, ICC_RPR_EL1). A guest
 * inside its own interrupt handler has one active; if its group priority is 0x00, nothing preempts it, the
 * shim's doorbell and EL2 timer included, and a WFI would never end. UEFI leaves exactly that behind: EDK2's
 * GICv2 driver sets GICC_BPR to 7 (no preemption: every group priority is 0) and Linux's GICv2 driver never
 * writes the BPR, so every interrupt Linux then takes runs at running priority 0x00. Such a wait polls.
 */
int wake_possible(void)
{
	const struct host_page *h = host();
	u32 rpr = (h->flags & HOST_GICV3) ? (u32)READ_SYSREG(ICC_RPR_EL1) : MMIO32(h->gicc + GICC_RPR);
	return (rpr & 0xff) > PRIO_WAKE;
}

/* The EL2 timer fires after `ticks`; a sleep never outlasts it. */
void wake_timer(u64 ticks)
{
	WRITE_SYSREG(cnthp_cval_el2, READ_SYSREG(cntpct_el0) + ticks);
	WRITE_SYSREG(cnthp_ctl_el2, 1);
	isb();
}

/* Clears both wake sources' pending state (after the doorbell has been drained and the timer stopped). */
void wake_clear(struct cpu *c)
{
	const struct host_page *h = host();
	u32 spi = h->doorbell_intid + c->index;
	WRITE_SYSREG(cnthp_ctl_el2, 0);
	isb();
	MMIO32(h->gicd + GICD_ICPENDR + word(spi)) = bit(spi);
	if (h->flags & HOST_GICV3)
		MMIO32(redist_sgi(h, c->index) + GICD_ICPENDR) = bit(INTID_HYP_TIMER);
	else
		MMIO32(h->gicd + GICD_ICPENDR) = bit(INTID_HYP_TIMER);
}

/* Switches the shim's two wake sources off; the CPU interface stays as wake_arm left it (wake_restore). */
void wake_sources_off(struct cpu *c)
{
	const struct host_page *h = host();
	u32 spi = h->doorbell_intid + c->index;
	MMIO32(h->gicd + GICD_ICENABLER + word(spi)) = bit(spi);
	if (h->flags & HOST_GICV3)
		MMIO32(redist_sgi(h, c->index) + GICD_ICENABLER) = bit(INTID_HYP_TIMER);
	else
		MMIO32(h->gicd + GICD_ICENABLER) = bit(INTID_HYP_TIMER);
	isb();
}

/* Gives the guest its CPU interface back as it was: its group enable and its priority mask. */
void wake_restore(const struct gic_save *s)
{
	const struct host_page *h = host();
	if (h->flags & HOST_GICV3) {
		WRITE_SYSREG(ICC_IGRPEN1_EL1, s->cpu_ctlr);
		WRITE_SYSREG(ICC_PMR_EL1, s->pmr);
	} else {
		MMIO32(h->gicc + GICC_CTLR) = s->cpu_ctlr;
		MMIO32(h->gicc + GICC_PMR) = s->pmr;
	}
	isb();
}

/* Gives the guest its GIC back as it was. */
void wake_disarm(struct cpu *c, const struct gic_save *s)
{
	wake_sources_off(c);
	wake_restore(s);
}
