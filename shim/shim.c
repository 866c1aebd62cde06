/*
 * The EL2 shim: it owns EL2 on every CPU of one QEMU `virt` machine, runs the guest at EL1 behind stage-2
 * translation, and hands every trapped SMC and HVC to the hypervisor (Node) through a per-vCPU mailbox in
 * memory only EL2 maps, with a doorbell the guest cannot reach (docs/qemu-channel.md). It decides nothing:
 * the hypervisor's reply says what to do. The only things it does on its own are the fast table's fixed
 * answers and refusing accesses outside the guest's map (a synchronous external abort, as KVM does).
 */
#include "shim.h"

/* HCR_EL2 (D17.2.48): VM (stage 2), SWIO (set/way invalidation by EL1 cleans too), TSC, RW. */
#define HCR_VM (1ul << 0)
#define HCR_SWIO (1ul << 1)
#define HCR_TSC (1ul << 19)
#define HCR_RW (1ul << 31)

/* A handover VM's CPU (docs/handover.md): its kernel was entered at EL2 and owns it, or has handed it over. */
#define HANDOVER_NONE 0
#define HANDOVER_KERNEL_OWNS_EL2 1
#define HANDOVER_DONE 2

/* Physical PSCI function IDs (DEN0022). */
#define PSCI_CPU_OFF 0x84000002u
#define PSCI_CPU_ON64 0xC4000003u
#define PSCI_CPU_ON32 0x84000003u
#define PSCI_SYSTEM_OFF 0x84000008u
#define PSCI_SYSTEM_RESET 0x84000009u

extern char stacks[];
extern void secondary_entry(void);
extern void _start(void);
extern void enter_guest(u64 *regs, u64 sp_top, u64 entry, u64 spsr) __attribute__((noreturn));
extern void phys_smc(u64 *regs);

static struct cpu cpus[MAX_CPUS];

static void park(void) __attribute__((noreturn));
static void park(void)
{
	for (;;)
		__asm__ volatile("wfe");
}

static struct cpu *this_cpu(void)
{
	return &cpus[READ_SYSREG(mpidr_el1) & 0xff];
}

static u64 stack_top(struct cpu *c)
{
	return (u64)stacks + (u64)(c->index + 1) * STACK_SIZE;
}

/*
 * Waits for the reply to request `seq`: polls the mailbox for a while, then sleeps in WFI until the
 * doorbell (or the EL2 timer, which bounds every sleep), then polls again. Before sleeping the shim says so
 * in the mailbox; the hypervisor rings only a sleeping CPU. Both sides write their flag, then a full
 * barrier, then read the other's (the reply's sequence number here, `sleeping` there), so at least one of
 * them sees the other.
 *
 * How long it polls adapts, as KVM's halt polling does: a reply that came after the CPU had gone to sleep
 * but within SPIN_MAX_FACTOR times the host page's spin_ticks says such calls take about that long, so the
 * next wait polls that long (a sleep and a doorbell cost ~65 µs more on the machines measured); a longer
 * wait (a delegate that takes seconds) puts it back to spin_ticks. While the host's cores are all busy the
 * hypervisor's advice (host state) replaces it: a CPU polling for its reply would take the core the
 * hypervisor needs to answer it.
 */
#define SPIN_MAX_FACTOR 4

static void wait_reply(struct cpu *c, u32 seq)
{
	struct mailbox *m = c->mb;
	const struct host_page *h = host();
	const volatile struct host_state *hs = (const volatile struct host_state *)HOST_STATE;
	u64 posted = READ_SYSREG(cntpct_el0), start = posted;
	int slept = 0, blocked = 0;
	if (c->spin < h->spin_ticks)
		c->spin = h->spin_ticks;
	for (u32 n = 0; m->rsp_seq != seq; n++) {
		if ((n & 63) != 63)
			continue;
		u32 advice = hs->spin_ticks;
		if (READ_SYSREG(cntpct_el0) - start < (advice ? advice : c->spin))
			continue;
		/* Inside a guest interrupt handler nothing may be able to wake a WFI (gic.c): keep polling. */
		if (!wake_possible()) {
			blocked = 1;
			start = READ_SYSREG(cntpct_el0);
			continue;
		}
		struct gic_save s;
		wake_arm(c, &s, 0);
		m->sleeping = 1;
		dmb_full();
		if (m->rsp_seq != seq) {
			wake_timer(h->sleep_ticks);
			__asm__ volatile("dsb sy; wfi" : : : "memory");
			slept = 1;
		}
		m->sleeping = 0;
		wake_disarm(c, &s);
		doorbell_drain(&c->bell);
		wake_clear(c);
		/* Woken (or never asleep): poll again, the reply is usually close. */
		start = READ_SYSREG(cntpct_el0);
	}
	if (blocked)
		m->blocked_waits++;
	if (slept) {
		u64 waited = READ_SYSREG(cntpct_el0) - posted;
		u64 most = (u64)h->spin_ticks * SPIN_MAX_FACTOR;
		c->spin = waited <= most ? waited + waited / 4 : h->spin_ticks;
		if (c->spin > most)
			c->spin = most;
	}
	dmb();
}

/* Posts the request already written in the mailbox and returns the hypervisor's reply. */
struct reply *exchange(struct cpu *c, u16 type)
{
	struct mailbox *m = c->mb;
	struct request *q = &m->req;
	q->magic = SMCV_MAGIC;
	q->version = SMCV_VERSION;
	q->type = type;
	q->vcpu = c->index;
	q->cntvct = READ_SYSREG(cntvct_el0);
	q->local_calls = c->local_calls;
	q->wa2_state = c->wa2_state;
	q->aborts = c->aborts;
	q->abort_ipa = c->abort_ipa;
	c->local_calls = 0;
	c->aborts = 0;
	u32 seq = ++c->seq;
	dmb();
	m->req_seq = seq;
	dmb_full();
	if (!((volatile struct host_state *)HOST_STATE)->polling)
		doorbell_ring(&c->bell);
	wait_reply(c, seq);
	struct reply *r = &m->rsp;
	if (r->magic != SMCV_MAGIC || r->version != SMCV_VERSION)
		park();
	return r;
}

/* Commands that end in a physical PSCI call or a guest entry; they do not return. */
static void __attribute__((noreturn)) final_command(struct cpu *c, struct reply *r)
{
	u64 regs[18];
	zero(regs, sizeof(regs));
	switch (r->type) {
	case RSP_RESUME_AT: {
		u64 entry = r->entry, spsr, flags = r->flags;
		zero(c->regs, sizeof(c->regs));
		if (flags & RESUME_WFI)
			__asm__ volatile("dsb sy; wfi");
		if (flags & RESUME_WAKE) {
			/*
			 * A power-down suspend: wait for the wake-up event, then enter as a warm boot does, with the
			 * MMU and caches of EL1 off (DEN0022 §6.4.3); the rest of the context is the guest's to restore.
			 */
			wait_wake(c, 0);
			WRITE_SYSREG(sctlr_el1, SCTLR_EL1_RESET);
		}
		if (flags & RESUME_EL2) {
			/*
			 * A handover VM's kernel, entered as on a board without a hypervisor: at EL2h with D, A, I, F
			 * masked and the MMU off (Linux's Documentation/arch/arm64/booting.rst), no stage 2 and no SMC
			 * trap (its SMCs reach QEMU's PSCI directly). It owns EL2 until it makes the shim's vectors its
			 * VBAR_EL2 and calls them (handover() below). Only where the hypervisor said so in the host page.
			 */
			if (!(host()->flags & HOST_HANDOVER))
				park();
			c->el2_kernel = HANDOVER_KERNEL_OWNS_EL2;
			WRITE_SYSREG(hcr_el2, HCR_RW);
			spsr = 0x3c9;
			for (int i = 0; i < 4; i++)
				c->regs[i] = r->x[i];
		} else if (flags & RESUME_AARCH32) {
			/* EL1 is AArch32: HCR_EL2.RW = 0; SVC mode with A, I, F masked, T from entry bit 0 (DEN0022 §6.4.3). */
			WRITE_SYSREG(hcr_el2, HCR_VM | HCR_SWIO | HCR_TSC);
			spsr = 0x1d3 | ((entry & 1) ? 0x20 : 0);
			entry &= ~1ul;
			for (int i = 0; i < 4; i++)
				c->regs[i] = (u32)r->x[i];
		} else {
			/* EL1h with D, A, I, F masked (DEN0022 §6.4.3). */
			WRITE_SYSREG(hcr_el2, HCR_VM | HCR_SWIO | HCR_TSC | HCR_RW);
			spsr = 0x3c5;
			for (int i = 0; i < 4; i++)
				c->regs[i] = r->x[i];
		}
		isb();
		enter_guest(c->regs, stack_top(c), entry, spsr);
	}
	case RSP_RESTART:
		/*
		 * A handed-over kernel's HVC_SOFT_RESTART (docs/handover.md): where its stub would branch at EL2
		 * with the MMU off, the CPU enters `entry` at EL1h with its MMU and caches off (SCTLR_EL1 as at
		 * reset, start.S), DAIF masked, x0..x3 from the reply, stage 2 and the SMC trap kept.
		 */
		zero(c->regs, sizeof(c->regs));
		WRITE_SYSREG(sctlr_el1, SCTLR_EL1_RESET);
		WRITE_SYSREG(hcr_el2, HCR_VM | HCR_SWIO | HCR_TSC | HCR_RW);
		for (int i = 0; i < 4; i++)
			c->regs[i] = r->x[i];
		isb();
		__asm__ volatile("tlbi vmalle1; dsb ish; isb" : : : "memory");
		enter_guest(c->regs, stack_top(c), r->entry, 0x3c5);
	case RSP_CPU_OFF:
		regs[0] = PSCI_CPU_OFF;
		break;
	case RSP_SYSTEM_OFF:
		regs[0] = PSCI_SYSTEM_OFF;
		break;
	case RSP_SYSTEM_RESET:
		regs[0] = PSCI_SYSTEM_RESET;
		break;
	default:
		park();
	}
	phys_smc(regs);
	park();
}

/* A physical SMC on the hypervisor's behalf (R9); CPU_ON gets the shim's own secondary entry. */
static struct reply *physical_call(struct cpu *c, struct reply *r)
{
	u64 regs[18];
	for (int i = 0; i < 18; i++)
		regs[i] = r->x[i];
	u32 fid = (u32)regs[0];
	if (fid == PSCI_CPU_ON64 || fid == PSCI_CPU_ON32)
		regs[2] = (u64)secondary_entry;
	phys_smc(regs);
	zero(&c->mb->req, sizeof(struct request));
	for (int i = 0; i < 18; i++)
		c->mb->req.x[i] = regs[i];
	return exchange(c, REQ_PHYS_RESULT);
}

/*
 * A call the hypervisor said the shim may answer itself (the fast table in the host page: side-effect-free
 * calls such as SMCCC_ARCH_WORKAROUND_1/3, and WORKAROUND_2 whose only effect is per-CPU state, reported in
 * every request): x0 = the table's value and x1-x3 = 0, exactly as the router would answer, ELR past an SMC.
 */
static int answer_locally(struct cpu *c, u64 *frame, u32 esr)
{
	const struct host_page *h = host();
	u32 ec = esr >> 26;
	u32 n = h->fast_count;
	if (n == 0 || (esr & 0xffff) != 0 || (ec != EC_HVC64 && ec != EC_SMC64))
		return 0;
	if (n > FAST_ENTRIES)
		n = FAST_ENTRIES;
	u64 conduit = ec == EC_HVC64 ? FAST_HVC : FAST_SMC;
	u32 fid = (u32)frame[0];
	for (u32 i = 0; i < n; i++) {
		u64 key = h->fast[2 * i];
		if ((u32)key != fid || !(key & conduit))
			continue;
		if (key & FAST_RECORD_WA2)
			c->wa2_state = (u32)frame[1] != 0 ? 2 : 1;
		frame[0] = h->fast[2 * i + 1];
		frame[1] = 0;
		frame[2] = 0;
		frame[3] = 0;
		if (ec == EC_SMC64)
			WRITE_SYSREG(elr_el2, READ_SYSREG(elr_el2) + 4);
		c->local_calls++;
		return 1;
	}
	return 0;
}

/* Reports an exception the shim does not handle and parks; the hypervisor stops the VM. */
static void __attribute__((noreturn)) unexpected(struct cpu *c, u64 esr, u64 *frame)
{
	if (!c->mb)
		park();
	zero(&c->mb->req, sizeof(struct request));
	c->mb->req.esr = (u32)esr;
	c->mb->req.elr = READ_SYSREG(elr_el2);
	c->mb->req.spsr = READ_SYSREG(spsr_el2);
	c->mb->req.far = READ_SYSREG(far_el2);
	for (int i = 0; i < 18; i++)
		c->mb->req.x[i] = frame ? frame[i] : 0;
	exchange(c, REQ_UNEXPECTED);
	park();
}

/*
 * An access outside the guest's stage-2 map (EC 0x20 / 0x24 from EL1 or EL0): the IPA backs nothing the
 * guest was given. The guest gets a synchronous external abort; the hypervisor hears of it in the next request.
 */
static void stage2_fault(struct cpu *c, u64 *frame, u32 esr)
{
	u64 far = READ_SYSREG(far_el2);
	u64 hpfar = READ_SYSREG(hpfar_el2);
	c->aborts++;
	c->abort_ipa = ((hpfar >> 4) << 12) | (far & 0xfff);
	/*
	 * Not into an AArch32 EL1 under QEMU 7.2: its return from AArch64 EL2 into another AArch32 mode does not
	 * rebank that mode's SPSR (cpsr_write_from_spsr_elx writes CPSR raw, aarch64_sync_64_to_32 moves only
	 * general registers), so the guest's handler would return with a stale SPSR. The VM ends instead, with
	 * the address in the reason.
	 */
	if (READ_SYSREG(spsr_el2) & PSR_AA32)
		unexpected(c, esr, frame);
	inject_abort(frame, esr, far);
}

static void serve(struct cpu *c, u64 *frame, u32 esr, struct reply *r);
static void load_stage2(const struct host_page *h);

/*
 * A handover VM's kernel calls the shim's vectors for the first time: it has made them its VBAR_EL2 through
 * its hyp stub (HVC_SET_VECTORS, arch/arm64/kernel/hyp-stub.S) and now makes an HVC from EL1, which lands
 * here. From this instruction on EL2 is the shim's: stage 2 and the SMC trap go on exactly as for a guest
 * booted at EL1, and the hypervisor hears of it (REQ_HANDOVER, with the call's registers) and answers the
 * call. Anything else that reaches the vectors while the kernel still owns EL2 (an exception at EL2 itself,
 * an SMC, an abort) is not a handover: the VM ends.
 */
static void handover(struct cpu *c, u64 kind, u64 *frame, u32 esr)
{
	if (kind != 8 || (esr >> 26) != EC_HVC64 || (esr & 0xffff) != 0)
		unexpected(c, kind < 8 ? esr : (kind << 32) | esr, frame);
	c->el2_kernel = HANDOVER_DONE;
	WRITE_SYSREG(hcr_el2, HCR_VM | HCR_SWIO | HCR_TSC | HCR_RW);
	isb();
	load_stage2(host());
	/* Whatever the kernel's EL1 translations cached without stage 2 goes (every VMID, Arm ARM D8.13). */
	__asm__ volatile("dsb ishst; tlbi alle1; dsb ish; isb" : : : "memory");
	struct request *q = &c->mb->req;
	zero(q, sizeof(*q));
	q->esr = esr;
	q->elr = READ_SYSREG(elr_el2);
	q->spsr = READ_SYSREG(spsr_el2);
	for (int i = 0; i < 18; i++)
		q->x[i] = frame[i];
	serve(c, frame, esr, exchange(c, REQ_HANDOVER));
}

/* The per-boot set-up of a CPU's channel: its mailbox and doorbell (0: done; -1: no doorbell, it stays off). */
static int cpu_channel(struct cpu *c, u64 index)
{
	const struct host_page *h = host();
	c->index = (u32)index;
	c->mb = (struct mailbox *)(MAILBOX_BASE + index * MAILBOX_STRIDE);
	if (c->booted)
		return 0;
	/* The sequence continues across a machine reset: the hypervisor keeps counting. */
	c->seq = c->mb->req_seq;
	c->mb->sleeping = 0;
	c->wake_seen = c->mb->wake_req;
	/* Without its doorbell the CPU could neither wake the hypervisor nor be woken. */
	if (doorbell_init(&c->bell, h->doorbell + index * 0x200) != 0)
		return -1;
	c->booted = 1;
	return 0;
}

/*
 * A CPU the shim never started calls its vectors. In a handover VM whose kernel was entered at EL2 this
 * boot (the boot CPU's state says so), that is a secondary CPU the kernel started itself through QEMU's
 * PSCI (target/arm/psci.c starts it at EL2, in the kernel's secondary entry, never through the shim), now
 * handing EL2 over: the shim adopts it, giving it the channel shim_cpu_main gives the CPUs it starts. The
 * kernel's own EL2 set-up (arch/arm64/include/asm/el2_setup.h: VPIDR/VMPIDR, CPTR, timers, GIC system
 * registers) stays, as it does on the boot CPU. Anything else is a CPU the shim knows nothing of: it parks.
 */
static int adopt(struct cpu *c, u64 index)
{
	const struct host_page *h = host();
	if (!(h->flags & HOST_HANDOVER) || index == 0 || index >= h->vcpus || index >= MAX_CPUS)
		return 0;
	if (cpus[0].el2_kernel == HANDOVER_NONE)
		return 0;
	if (cpu_channel(c, index) != 0)
		park();
	c->el2_kernel = HANDOVER_KERNEL_OWNS_EL2;
	return 1;
}

/* Called from the vectors: kind = vector index (0-15), frame = x0..x30 of the interrupted context. */
void shim_exception(u64 kind, u64 *frame)
{
	struct cpu *c = this_cpu();
	u32 esr = (u32)READ_SYSREG(esr_el2);
	u32 ec = esr >> 26;
	if (c->el2_kernel == HANDOVER_KERNEL_OWNS_EL2 || (!c->booted && adopt(c, READ_SYSREG(mpidr_el1) & 0xff))) {
		handover(c, kind, frame, esr);
		return;
	}
	if (!c->booted || (kind != 8 && kind != 12))
		unexpected(c, kind < 8 ? esr : (kind << 32) | esr, frame);
	if (ec == EC_DABT_LOWER || ec == EC_IABT_LOWER) {
		if (ec == EC_DABT_LOWER && mmio_access(c, frame, esr))
			return;
		stage2_fault(c, frame, esr);
		return;
	}
	if (ec != EC_HVC64 && ec != EC_SMC64 && ec != EC_HVC32 && ec != EC_SMC32)
		unexpected(c, esr, frame);
	if (answer_locally(c, frame, esr))
		return;

	struct request *q = &c->mb->req;
	zero(q, sizeof(*q));
	q->esr = esr;
	q->elr = READ_SYSREG(elr_el2);
	q->spsr = READ_SYSREG(spsr_el2);
	for (int i = 0; i < 18; i++)
		q->x[i] = frame[i];
	serve(c, frame, esr, exchange(c, REQ_TRAP));
}

/* Applies the hypervisor's reply to a trapped call (or to the handover call) of the EL1 context in `frame`. */
static void serve(struct cpu *c, u64 *frame, u32 esr, struct reply *r)
{
	for (;;) {
		switch (r->type) {
		case RSP_RETURN: {
			u32 n = r->count < 18 ? r->count : 18;
			for (u32 i = 0; i < n; i++)
				frame[i] = r->x[i];
			WRITE_SYSREG(elr_el2, READ_SYSREG(elr_el2) + r->advance);
			return;
		}
		case RSP_RETURN_WAKE: {
			/* A standby state: the call returns these registers after a wake-up event, or the bound. */
			u32 n = r->count < 18 ? r->count : 18;
			for (u32 i = 0; i < n; i++)
				frame[i] = r->x[i];
			WRITE_SYSREG(elr_el2, READ_SYSREG(elr_el2) + r->advance);
			wait_wake(c, host()->sleep_ticks);
			return;
		}
		case RSP_UNDEF:
			/* AArch32 EL1: not under QEMU 7.2, for the reason stage2_fault gives. */
			if (READ_SYSREG(spsr_el2) & PSR_AA32)
				unexpected(c, esr, frame);
			inject_undef(frame, esr);
			return;
		case RSP_PHYS_SMC:
			r = physical_call(c, r);
			continue;
		default:
			final_command(c, r);
		}
	}
}

/* Stage 2 as the hypervisor built it (host page): every CPU loads it before it first enters EL1. */
static void load_stage2(const struct host_page *h)
{
	WRITE_SYSREG(vtcr_el2, h->vtcr);
	WRITE_SYSREG(vttbr_el2, h->vttbr);
	isb();
	__asm__ volatile("dsb ishst; tlbi vmalls12e1; dsb ish; isb" : : : "memory");
}

/*
 * Every CPU comes here at EL2 once its registers are set up: the boot CPU at reset (cold = 1: a new boot
 * of the machine, every CPU's state starts afresh), others after a physical CPU_ON.
 */
void shim_cpu_main(u64 index, u64 cold)
{
	const struct host_page *h = host();
	if (h->magic != HOST_MAGIC || h->version != SMCV_VERSION || index >= h->vcpus || index >= MAX_CPUS)
		park();
	if (cold) {
		zero(cpus, sizeof(cpus));
		wake_boot();
	}
	struct cpu *c = &cpus[index];
	if (cpu_channel(c, index) != 0)
		park();
	load_stage2(h);
	zero(&c->mb->req, sizeof(struct request));
	c->mb->req.elr = (u64)_start;
	struct reply *r = exchange(c, REQ_HELLO);
	for (;;) {
		if (r->type == RSP_PHYS_SMC)
			r = physical_call(c, r);
		else
			final_command(c, r);
	}
}
