/*
 * The bare-metal conformance guest: it runs a script of SMC/HVC calls from real EL1 code, one line per
 * call on the PL011 console, so the conformance cases of test/conformance run under QEMU exactly as they
 * run in-process. The script follows the image at offset 1 MiB (src/machine/qemu/baremetal.ts):
 *
 *   header: "SMCVSCRP" magic, step count, flags, loop count, halt acknowledgements (written by the host)
 *   step:   vcpu, conduit (0 hvc #0, 1 smc #0, 2 hvc #1, 3 smc #1; 4 no call: copy x3 bytes from x1 to x2;
 *           5 no call: arm the virtual timer as a wake-up event, below; 6 no call: acknowledge its interrupt
 *           at running priority 0x00, below),
 *           flags (1 halts, 2 waits after a halt, 4 takes earlier results), group size, x0..x17
 *
 * With flag 4, a register whose script value is STEP_REF_MARK | step << 8 | reg is given, before the call,
 * what register <reg> held after step <step> (< MAX_REF_STEPS, a step that returned and ran alone): how a
 * case passes on a value only the call reveals, such as the handle of an FF-A memory share.
 *
 * Steps run in order across vCPUs; a race group of k steps is issued by k vCPUs at the same moment.
 * Output lines:
 *   SMCV-BOOT                      the boot vCPU started (again after a reset)
 *   SMCV-ENTRY <cpu> <x0>          a vCPU started at secondary_entry
 *   SMCV-STEP <i> <x0> .. <x17>    a call returned
 *   SMCV-HALT <i>                  a call that does not return is about to be made
 *   SMCV-UNDEF <i> <esr>           the call took an UNDEFINED exception (conduits 2, 3: #imm 1; AArch32: esr 0)
 *   SMCV-LOOP <n> <ticks>          loop mode: n calls took <ticks> counter ticks
 *   SMCV-AFTER-SMC <n>             the instruction after an SMC ran n times in all
 *   SMCV-PROBE <what> refused <esr> <far>   probe mode: the access took an exception (AArch32: DFSR/IFSR, DFAR/IFAR)
 *   SMCV-PROBE <what> allowed <value>       ... or it did not, and read <value>
 *   SMCV-DONE                      the script is finished
 */
typedef unsigned long long u64;
typedef unsigned int u32;

#define UART 0x09000000ul
#define MAX_CPUS 8

struct header {
	u64 magic;
	u64 steps;
	u64 flags;	/* HOST_ACKS_HALTS: the host counts halting calls in halt_acks */
	u64 loop_count; /* loop mode: issue step 0 this many times and report the time */
	u64 halt_acks;	/* written by the host: halting calls the hypervisor has taken */
	u64 ram_end;	/* probe mode (flags & PROBE): the end of the VM's RAM (IPA) */
};

#define HOST_ACKS_HALTS 1ull
#define PROBE 2ull		/* try to reach what the VM was not given before the script runs */

struct step {
	u32 vcpu;
	u32 conduit;
	u32 flags;
	u32 group;
	u64 x[18];
};

#define STEP_HALTS 1u
#define STEP_AFTER_HALT 2u
#define STEP_REFS 4u
/* A step with this conduit makes no call: it copies x3 bytes from x1 to x2 (a case's data, from the image). */
#define CONDUIT_COPY 4u
/*
 * No call either: arm this vCPU's virtual timer to fire x1 ticks from now, its interrupt (PPI 27) enabled
 * at the GIC whose distributor is at x2 and whose CPU interface (GICv2; x4 = 2) or this CPU's
 * redistributor (GICv3; x4 = 3) is at x3, PSTATE's I bit left masked: an interrupt the guest does not take
 * but that is pending for it, the wake-up event of a suspend (docs/suspend.md). AArch64 guest only (x0 = 0
 * after it; the AArch32 guest reports x0 = -1).
 */
#define CONDUIT_TIMER 5u
/*
 * No call either: set this CPU interface's binary point to 7 (GICv2: no preemption, every group priority is 0,
 * as EDK2's GIC driver leaves it and Linux keeps it; GICv3: the interrupt's priority 0x00 as well, since its
 * Group 1 binary point keeps one bit), wait up to 1 s for the interrupt the timer
 * step armed and acknowledge it (GICC_IAR / ICC_IAR1_EL1, same x3 and x4), leaving it active: the running
 * priority is then 0x00, as inside a Linux interrupt handler booted by UEFI. x0 = the INTID acknowledged,
 * 1023 if none came. AArch64 guest only (the AArch32 guest reports x0 = -1).
 */
#define CONDUIT_ACTIVATE 6u

#define STEP_REF_MARK 0x5ec0f00000000000ull
#define STEP_REF_MASK 0xffffffffff000000ull
#define MAX_REF_STEPS 64

extern char __script[];
/*
 * Exceptions taken at EL1, kept by the EL1 vectors in start.S / start32.S: count, the last one's syndrome
 * (AArch64: ESR_EL1; AArch32: DFSR or IFSR, 0 for an UNDEFINED instruction) and address (FAR_EL1; DFAR or IFAR).
 */
extern volatile u64 undefs[3];
extern void call(u64 *regs, unsigned long conduit);

u64 after_smc;
static volatile u64 next_step;
static volatile u64 ready[MAX_CPUS];
static volatile u64 done[MAX_CPUS];
static volatile u32 uart_lock;
static u64 results[MAX_CPUS][18];
/* Each early step's result registers, for later steps that take them (STEP_REFS). */
static u64 kept[MAX_REF_STEPS][18];

static void lock(void)
{
	u32 tmp, one = 1;
#ifdef __aarch64__
	__asm__ volatile("1: ldaxr %w0, [%1]\n cbnz %w0, 1b\n stxr %w0, %w2, [%1]\n cbnz %w0, 1b"
			 : "=&r"(tmp) : "r"(&uart_lock), "r"(one) : "memory");
#else
	__asm__ volatile("1: ldrex %0, [%1]\n cmp %0, #0\n bne 1b\n strex %0, %2, [%1]\n cmp %0, #0\n bne 1b\n dmb sy"
			 : "=&r"(tmp) : "r"(&uart_lock), "r"(one) : "memory", "cc");
#endif
}

static void unlock(void)
{
#ifdef __aarch64__
	__asm__ volatile("stlr wzr, [%0]" : : "r"(&uart_lock) : "memory");
#else
	__asm__ volatile("dmb sy" : : : "memory");
	uart_lock = 0;
#endif
}

static void putc_(char c)
{
	volatile u32 *uart = (volatile u32 *)UART;
	while (uart[0x18 / 4] & (1u << 5))
		;
	uart[0] = (u32)c;
}

static void puts_(const char *s)
{
	while (*s)
		putc_(*s++);
}

static void puthex(u64 v)
{
	putc_(' ');
	putc_('0');
	putc_('x');
	int started = 0;
	for (int i = 60; i >= 0; i -= 4) {
		u32 d = (v >> i) & 0xf;
		if (d || started || i == 0) {
			putc_((char)(d < 10 ? '0' + d : 'a' + d - 10));
			started = 1;
		}
	}
}

static void putdec(u64 v)
{
	char buf[24];
	int n = 0;
	do {
		buf[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	putc_(' ');
	while (n)
		putc_(buf[--n]);
}

static u64 counter(void)
{
	u64 v;
#ifdef __aarch64__
	__asm__ volatile("isb; mrs %0, cntvct_el0" : "=r"(v));
#else
	__asm__ volatile("isb; mrrc p15, 1, %Q0, %R0, c14" : "=r"(v)); /* CNTVCT */
#endif
	return v;
}

static u64 counter_freq(void)
{
	u64 v;
#ifdef __aarch64__
	__asm__ volatile("mrs %0, cntfrq_el0" : "=r"(v));
#else
	u32 f;
	__asm__ volatile("mrc p15, 0, %0, c14, c0, 0" : "=r"(f)); /* CNTFRQ */
	v = f;
#endif
	return v;
}

static void barrier(void)
{
	__asm__ volatile("dmb sy" : : : "memory");
}

static volatile u64 entries, expected_entries, halts_issued;

static void print_step(u64 i, const u64 *x, u64 fid)
{
	/* A successful CPU_ON (SMC32 or SMC64) will start a vCPU: finish() waits for its entry line. */
	if ((fid & 0xbfffffffu) == 0x84000003u && x[0] == 0)
		expected_entries++;
	lock();
	puts_("SMCV-STEP");
	putdec(i);
	for (int r = 0; r < 18; r++)
		puthex(x[r]);
	putc_('\n');
	unlock();
}

static void finish(void)
{
	/* vCPUs the script started print their entry line first (for at most 5 s). */
	u64 until = counter() + 5 * counter_freq();
	while (counter() < until) {
		barrier();
		if (entries >= expected_entries)
			break;
	}
	lock();
	puts_("SMCV-AFTER-SMC");
	putdec(after_smc);
	puts_("\nSMCV-DONE\n");
	unlock();
}

#define PPI_VTIMER 27
static u64 arm_timer(u64 ticks, unsigned long gicd, unsigned long gicc, u64 version)
{
#ifdef __aarch64__
	if (version == 3) {
		/* GICv3 with one security state (IHI 0069H): ARE, Group 1; the redistributor awake; PPI 27 Group 1. */
		unsigned long sgi = gicc + 0x10000;
		*(volatile u32 *)(gicd + 0x000) |= (1u << 4) | (1u << 1);	/* GICD_CTLR: ARE, EnableGrp1 */
		*(volatile u32 *)(gicc + 0x014) &= ~(1u << 1);			/* GICR_WAKER.ProcessorSleep */
		while (*(volatile u32 *)(gicc + 0x014) & (1u << 2))		/* ChildrenAsleep */
			;
		*(volatile u32 *)(sgi + 0x080) |= 1u << PPI_VTIMER;		/* GICR_IGROUPR0 */
		*(volatile unsigned char *)(sgi + 0x400 + PPI_VTIMER) = 0x80;	/* GICR_IPRIORITYR */
		*(volatile u32 *)(sgi + 0x100) = 1u << PPI_VTIMER;		/* GICR_ISENABLER0 */
		__asm__ volatile("mrs x9, S3_0_C12_C12_5; orr x9, x9, #1; msr S3_0_C12_C12_5, x9; isb\n" /* ICC_SRE_EL1.SRE */
				 "mov x9, #0xf0; msr S3_0_C4_C6_0, x9\n"		/* ICC_PMR_EL1 */
				 "mov x9, #1; msr S3_0_C12_C12_7, x9; isb"		/* ICC_IGRPEN1_EL1 */
				 : : : "x9", "memory");
	} else {
		*(volatile u32 *)(gicd + 0x000) = 1;			/* GICD_CTLR: forward Group 0 */
		*(volatile unsigned char *)(gicd + 0x400 + PPI_VTIMER) = 0x80; /* GICD_IPRIORITYR */
		*(volatile u32 *)(gicd + 0x100) = 1u << PPI_VTIMER;	/* GICD_ISENABLER0 */
		*(volatile u32 *)(gicc + 0x004) = 0xf0;			/* GICC_PMR */
		*(volatile u32 *)(gicc + 0x000) = 1;			/* GICC_CTLR: signal Group 0 as IRQ */
	}
	__asm__ volatile("msr cntv_cval_el0, %0; mov x9, #1; msr cntv_ctl_el0, x9; isb" : : "r"(counter() + ticks) : "x9", "memory");
	return 0;
#else
	(void)ticks, (void)gicd, (void)gicc, (void)version;
	return (u64)-1;
#endif
}

static u64 activate(unsigned long gicc, u64 version)
{
#ifdef __aarch64__
	u64 until = counter() + counter_freq(), intid = 1023;
	if (version == 3) {
		/*
		 * A Non-secure Group 1 binary point of 7 still leaves one group priority bit (QEMU's model takes
		 * ICC_BPR1_EL1 - 1 for that group: hw/intc/arm_gicv3_cpuif.c, icc_gprio_mask), so the interrupt
		 * is given priority 0x00 as well.
		 */
		__asm__ volatile("mov x9, #7; msr S3_0_C12_C12_3, x9; isb" : : : "x9", "memory"); /* ICC_BPR1_EL1 */
		*(volatile unsigned char *)(gicc + 0x10000 + 0x400 + PPI_VTIMER) = 0x00; /* GICR_IPRIORITYR */
	}
	else
		*(volatile u32 *)(gicc + 0x008) = 7; /* GICC_BPR */
	while (counter() < until) {
		if (version == 3)
			__asm__ volatile("mrs %0, S3_0_C12_C12_0" : "=r"(intid) : : "memory"); /* ICC_IAR1_EL1 */
		else
			intid = *(volatile u32 *)(gicc + 0x00c) & 0x3ff; /* GICC_IAR */
		if (intid < 1020)
			break;
	}
	return intid;
#else
	(void)gicc, (void)version;
	return (u64)-1;
#endif
}

static void run_loop(const struct header *h, const struct step *s)
{
	u64 regs[18];
	u64 start = counter();
	for (u64 n = 0; n < h->loop_count; n++) {
		for (int r = 0; r < 18; r++)
			regs[r] = s->x[r];
		call(regs, s->conduit);
	}
	u64 ticks = counter() - start;
	lock();
	puts_("SMCV-LOOP");
	putdec(h->loop_count);
	putdec(ticks);
	putdec(counter_freq());
	puthex(regs[0]);
	putc_('\n');
	unlock();
	finish();
}

static void run_script(unsigned long cpu)
{
	const struct header *h = (const struct header *)__script;
	const struct step *steps = (const struct step *)(h + 1);
	u64 regs[18];
	for (;;) {
		barrier();
		u64 i = next_step;
		if (i >= h->steps)
			break;
		const struct step *s = &steps[i];
		u32 k = s->group ? s->group : 1;
		u32 member = k;
		for (u32 j = 0; j < k; j++)
			if (steps[i + j].vcpu == cpu)
				member = j;
		if (member == k)
			continue;
		s = &steps[i + member];
		if (s->flags & STEP_AFTER_HALT) {
			/*
			 * The previous step's call does not return: wait until the hypervisor has taken it (the
			 * host counts them in the header), or 20 ms under a host that does not (QEMU's own PSCI).
			 */
			const volatile struct header *vh = h;
			int acks = (h->flags & HOST_ACKS_HALTS) != 0;
			u64 until = counter() + (acks ? 10 * counter_freq() : counter_freq() / 50);
			while (counter() < until && !(acks && vh->halt_acks >= halts_issued))
				barrier();
		}
		if (k > 1) {
			/* A race: every member arrives, then all issue their calls at once. */
			ready[member] = i + 1;
			barrier();
			for (u32 j = 0; j < k; j++)
				while (ready[j] != i + 1)
					barrier();
		}
		if (s->conduit == CONDUIT_TIMER && k == 1) {
			for (int r = 0; r < 18; r++)
				regs[r] = s->x[r];
			regs[0] = arm_timer(s->x[1], (unsigned long)s->x[2], (unsigned long)s->x[3], s->x[4]);
			print_step(i, regs, 0);
			barrier();
			next_step = i + 1;
			continue;
		}
		if (s->conduit == CONDUIT_ACTIVATE && k == 1) {
			for (int r = 0; r < 18; r++)
				regs[r] = s->x[r];
			regs[0] = activate((unsigned long)s->x[3], s->x[4]);
			print_step(i, regs, 0);
			barrier();
			next_step = i + 1;
			continue;
		}
		if (s->conduit == CONDUIT_COPY && k == 1) {
			/* Byte by byte: with the MMU off, RAM is Device memory, where unaligned accesses fault. */
			volatile unsigned char *to = (volatile unsigned char *)(unsigned long)s->x[2];
			const volatile unsigned char *from = (const volatile unsigned char *)(unsigned long)s->x[1];
			for (u64 n = 0; n < s->x[3]; n++)
				to[n] = from[n];
			print_step(i, s->x, s->x[0]);
			barrier();
			next_step = i + 1;
			continue;
		}
		for (int r = 0; r < 18; r++)
			regs[r] = s->x[r];
		if (s->flags & STEP_REFS)
			for (int r = 0; r < 18; r++)
				if ((regs[r] & STEP_REF_MASK) == STEP_REF_MARK) {
					u64 from = (regs[r] >> 8) & 0xffff, reg = regs[r] & 0xff;
					regs[r] = from < MAX_REF_STEPS && reg < 18 ? kept[from][reg] : 0;
				}
		if (s->flags & STEP_HALTS) {
			lock();
			puts_("SMCV-HALT");
			putdec(i + member);
			putc_('\n');
			halts_issued++;
			unlock();
			barrier();
			next_step = i + k;
			barrier();
			call(regs, s->conduit);
			return; /* not reached when the call halts, as it must */
		}
		u64 undefs_before = undefs[0];
		call(regs, s->conduit);
		if (undefs[0] != undefs_before) {
			lock();
			puts_("SMCV-UNDEF");
			putdec(i + member);
			puthex(undefs[1]);
			putc_('\n');
			unlock();
		}
		if (k == 1) {
			if (i < MAX_REF_STEPS)
				for (int r = 0; r < 18; r++)
					kept[i][r] = regs[r];
			print_step(i, regs, s->x[0]);
			barrier();
			next_step = i + 1;
			continue;
		}
		for (int r = 0; r < 18; r++)
			results[member][r] = regs[r];
		barrier();
		done[member] = i + 1;
		barrier();
		if (member != 0) {
			while (next_step == i)
				barrier();
			continue;
		}
		for (u32 j = 0; j < k; j++)
			while (done[j] != i + 1)
				barrier();
		for (u32 j = 0; j < k; j++)
			print_step(i + j, results[j], steps[i + j].x[0]);
		barrier();
		next_step = i + k;
	}
	if (cpu == 0)
		finish();
}


extern void probe_exec(unsigned long addr);

/* Semihosting SYS_OPEN (IHI 0037: operation 0x01 in w0/r0, parameter block in x1/r1, HLT #0xF000). */
static u64 semihost_open(const char *path, unsigned long len)
{
	unsigned long block[3] = { (unsigned long)path, 0 /* "r" */, len };
#ifdef __aarch64__
	register unsigned long r0 __asm__("x0") = 0x01;
	register unsigned long r1 __asm__("x1") = (unsigned long)block;
	__asm__ volatile("hlt #0xf000" : "+r"(r0) : "r"(r1) : "memory");
#else
	register unsigned long r0 __asm__("r0") = 0x01;
	register unsigned long r1 __asm__("r1") = (unsigned long)block;
	__asm__ volatile(".inst 0xe10f0070" : "+r"(r0) : "r"(r1) : "memory"); /* HLT #0xF000 (A32, Armv8) */
#endif
	return r0;
}

enum probe_kind { READ, WRITE, EXEC, SEMIHOST };

static void probe(const char *what, enum probe_kind kind, unsigned long addr)
{
	u64 before = undefs[0];
	unsigned long value = (unsigned long)0x5afe5afe5afe5afeull;
	switch (kind) {
	case READ:
		__asm__ volatile("ldr %0, [%1]" : "+r"(value) : "r"(addr) : "memory");
		break;
	case WRITE:
		__asm__ volatile("str %0, [%1]" : : "r"(value), "r"(addr) : "memory");
		break;
	case EXEC:
		probe_exec(addr);
		break;
	case SEMIHOST:
		value = (unsigned long)semihost_open("/etc/hostname", 13);
		break;
	}
	lock();
	puts_("SMCV-PROBE ");
	puts_(what);
	if (undefs[0] != before) {
		puts_(" refused");
		puthex(undefs[1]);
		puthex(undefs[2]);
	} else {
		puts_(" allowed");
		puthex(value);
	}
	putc_('\n');
	unlock();
}

/*
 * What a hostile kernel would try first. Each must be refused with an exception at EL1 (a synchronous
 * external abort for an address outside the VM's map, UNDEFINED for semihosting), except reads and writes
 * of the VM's own RAM, which must reach its own RAM only: the shim's region is below guest RAM in the
 * machine, at no IPA.
 */
static void run_probes(const struct header *h)
{
	unsigned long base = 0x40000000ul, end = (unsigned long)h->ram_end;
	probe("semihosting-open", SEMIHOST, 0);
	probe("below-ram", READ, base - 8);
	probe("ram-end", READ, end);
	probe("ram-end-write", WRITE, end);
	probe("far-beyond-ram", READ, end + 0x40000000ul);
	probe("exec-beyond-ram", EXEC, end);
	probe("flash", READ, 0x0);
	probe("gic-v2m", READ, 0x08020000);
	probe("gic-hyp", READ, 0x08030000);
	probe("gic-vcpu", READ, 0x08040000);
	probe("gic-its", READ, 0x08080000);
	probe("rtc", READ, 0x09010000);
	probe("fw-cfg", READ, 0x09020000);
	probe("gpio", READ, 0x09030000);
	probe("virtio-mmio", READ, 0x0a000000);
	probe("virtio-mmio-write", WRITE, 0x0a000050);
	probe("pcie-ecam", READ, 0x3f000000);
	probe("pcie-mmio", READ, 0x10000000);
	/* The guest's first RAM bytes are its device tree (the shim's physical address is no IPA of the guest's). */
	probe("ram-base", READ, base);
	probe("ram-base-write", WRITE, base + 0x100000);
	probe("gic-distributor", READ, 0x08000004);
}

void guest_main(unsigned long cpu, unsigned long secondary, unsigned long x0)
{
	const struct header *h = (const struct header *)__script;
	if (secondary) {
		lock();
		entries++;
		puts_("SMCV-ENTRY");
		putdec(cpu);
		puthex(x0);
		putc_('\n');
		unlock();
	} else {
		puts_("SMCV-BOOT\n");
	}
	if (!secondary && h->magic != 0x5052435356434d53ull) { /* "SMCVSCRP" */
		puts_("SMCV-ERROR no script\n");
		return;
	}
	if (!secondary && (h->flags & PROBE))
		run_probes(h);
	if (!secondary && h->loop_count) {
		run_loop(h, (const struct step *)(h + 1));
		return;
	}
	run_script(cpu);
}
