/*
 * Waiting for a wake-up event on the guest's behalf: a power-down CPU_SUSPEND (or SYSTEM_SUSPEND) resumes
 * at its entry point only after one, and a standby CPU_SUSPEND returns after one (DEN0022 §5.4, §6.5).
 * The guest owns the GIC and its interrupts go to EL1 (HCR_EL2.IMO = 0), so an interrupt the guest would
 * take is one the GIC signals to this CPU: ISR_EL1.I, read at EL2, shows it (Arm ARM DDI 0487 D19.2.70),
 * and WFI wakes on it whatever PSTATE's masks (D1.6.2). The shim sleeps in WFI with its doorbell and EL2
 * timer armed (gic.c) but the guest's own priority mask kept, so either kind of event ends the sleep:
 *
 *   - an interrupt pending for the guest (its timer, an SGI from another vCPU, a device): it stays pending,
 *     the shim never acknowledges it, and the guest takes it once it unmasks interrupts after the resume;
 *   - the host (the hypervisor's wake-up event: a conformance test's "wake", a toolstack poke): it bumps the
 *     mailbox's wake_req and rings the doorbell when it sees `waiting`.
 *
 * The EL2 timer bounds each sleep (a lost doorbell costs one sleep_ticks, not the vCPU); a standby wait also
 * ends at its bound, which a WFI is allowed to do (D1.6.2: a WFI may complete for any reason).
 *
 * Counters in the mailbox (protocol.h) say how waits ended. For a wake by the guest's virtual timer the
 * shim also notes the latency: counter ticks from the timer's condition (CNTV_CVAL_EL0 reached) to the
 * resume, the figure docs/suspend.md reports.
 */
#include "shim.h"

#define ISR_I (1ul << 7)
#define CNTV_ENABLE 1ul
#define CNTV_IMASK 2ul
#define CNTV_ISTATUS 4ul

enum { WAKE_IRQ = 1, WAKE_HOST, WAKE_BOUND };

static int host_asked(struct cpu *c)
{
	u32 w = c->mb->wake_req;
	if (w == c->wake_seen)
		return 0;
	c->wake_seen = w;
	return 1;
}

/* With the shim's own wake sources disarmed and cleared, a signalled IRQ is the guest's. */
static int guest_irq(void)
{
	isb();
	return (READ_SYSREG(isr_el1) & ISR_I) != 0;
}

static void note_latency(struct mailbox *m)
{
	u64 ctl = READ_SYSREG(cntv_ctl_el0);
	if ((ctl & (CNTV_ENABLE | CNTV_IMASK | CNTV_ISTATUS)) != (CNTV_ENABLE | CNTV_ISTATUS))
		return;
	u64 now = READ_SYSREG(cntvct_el0), due = READ_SYSREG(cntv_cval_el0);
	if (now < due)
		return;
	u64 lat = now - due;
	u32 l = lat > 0xffffffffu ? 0xffffffffu : (u32)lat;
	m->wake_lat_last = l;
	if (l > m->wake_lat_max)
		m->wake_lat_max = l;
	m->wake_lat_sum += lat;
	((volatile u32 *)((u64)m + WAKE_LOG_OFFSET))[m->wake_lat_count % WAKE_LOG_SIZE] = l;
	dmb();
	m->wake_lat_count++;
}

void wait_wake(struct cpu *c, u64 bound)
{
	struct mailbox *m = c->mb;
	const struct host_page *h = host();
	u64 start = READ_SYSREG(cntpct_el0);
	int cause, blocked = 0;
	m->waiting = 1;
	dmb_full();
	for (;;) {
		if (host_asked(c)) {
			cause = WAKE_HOST;
			break;
		}
		if (guest_irq()) {
			cause = WAKE_IRQ;
			break;
		}
		u64 now = READ_SYSREG(cntpct_el0), sleep = h->sleep_ticks ? h->sleep_ticks : 1;
		if (bound) {
			if (now - start >= bound) {
				cause = WAKE_BOUND;
				break;
			}
			if (bound - (now - start) < sleep)
				sleep = bound - (now - start);
		}
		/* No WFI when nothing could end it (gic.c, wake_possible): the loop polls its conditions instead. */
		if (!wake_possible()) {
			blocked = 1;
			continue;
		}
		struct gic_save s;
		wake_arm(c, &s, 1);
		dmb_full();
		/* The host bumps wake_req, then reads `waiting` and rings: one of us sees the other. */
		if (m->wake_req == c->wake_seen) {
			wake_timer(sleep);
			__asm__ volatile("dsb sy; wfi" : : : "memory");
		}
		wake_sources_off(c);
		doorbell_drain(&c->bell);
		wake_clear(c);
		/*
		 * Whatever ended the WFI, look for the guest's interrupt while its CPU interface is still open as
		 * wake_arm opened it (group 1 on, the guest's own priority mask), with the shim's two sources off
		 * and cleared: a guest that switched its group off before powering down (Linux's GICv3 driver
		 * does, gic_cpu_pm_notifier) has an interrupt pending that its own settings hide from ISR_EL1,
		 * and would otherwise sleep through every one of them.
		 */
		int irq = guest_irq();
		wake_restore(&s);
		if (irq) {
			cause = WAKE_IRQ;
			break;
		}
	}
	m->waiting = 0;
	if (blocked)
		m->blocked_waits++;
	if (cause == WAKE_IRQ) {
		m->wakes_irq++;
		note_latency(m);
	} else if (cause == WAKE_HOST)
		m->wakes_host++;
	else
		m->wakes_bound++;
	m->wakes++;
	dmb_full();
}
