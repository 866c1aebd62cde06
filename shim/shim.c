/*
 * The EL2 shim: it owns EL2 on every CPU of one QEMU `virt` machine, runs the guest at EL1 and hands every
 * trapped SMC and HVC to the hypervisor (Node) over a per-vCPU pair of FIFOs reached through Arm
 * semihosting. It decides nothing: the hypervisor's reply says what to do (docs/qemu-channel.md).
 *
 * Runs with the EL2 MMU off, so every data access is Device memory: built with -mstrict-align, and all
 * frames are 8-byte aligned.
 */
#include "protocol.h"

#define MAX_CPUS 8
#define STACK_SIZE 0x2000
#define FAST_ENTRIES 8

/* Arm semihosting (IHI 0037): operation in w0, parameter block in x1, HLT #0xF000 on AArch64. */
#define SYS_OPEN 0x01
#define SYS_WRITE 0x05
#define SYS_READ 0x06

/* ESR_EL2 exception classes (Arm ARM D17.2.37). */
#define EC_HVC32 0x12
#define EC_SMC32 0x13
#define EC_HVC64 0x16
#define EC_SMC64 0x17

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

struct fast_entry {
	u64 key; /* fid | FAST_HVC | FAST_SMC | FAST_RECORD_WA2 */
	u64 value;
};

struct cpu {
	long req_fd;
	long rsp_fd;
	u32 index;
	u32 open;
	u64 local_calls;
	u64 wa2_state;
	struct request req;
	struct reply rsp;
	u64 regs[31];
	u64 sem[3];
};

static struct cpu cpus[MAX_CPUS];
static struct fast_entry fast[FAST_ENTRIES];
static u32 fast_count;

static long semihost(long op, void *block)
{
	register long x0 __asm__("x0") = op;
	register void *x1 __asm__("x1") = block;
	__asm__ volatile("hlt #0xf000" : "+r"(x0) : "r"(x1) : "memory");
	return x0;
}

#define READ_SYSREG(name) ({ u64 _v; __asm__ volatile("mrs %0, " #name : "=r"(_v)); _v; })
#define WRITE_SYSREG(name, v) __asm__ volatile("msr " #name ", %0" : : "r"((u64)(v)))

static void park(void) __attribute__((noreturn));
static void park(void)
{
	for (;;)
		__asm__ volatile("wfe");
}

static void zero(void *p, unsigned long n)
{
	volatile u64 *q = p;
	for (unsigned long i = 0; i < n / 8; i++)
		q[i] = 0;
}

static long open_fifo(struct cpu *c, const char *suffix, long mode)
{
	/* "vcpuN.req" / "vcpuN.rsp" in QEMU's working directory (the VM's run directory). */
	static char names[MAX_CPUS][16];
	char *n = names[c->index];
	const char *prefix = "vcpu";
	int i = 0;
	while (*prefix)
		n[i++] = *prefix++;
	n[i++] = (char)('0' + c->index);
	while (*suffix)
		n[i++] = *suffix++;
	n[i] = 0;
	c->sem[0] = (u64)n;
	c->sem[1] = (u64)mode;
	c->sem[2] = (u64)i;
	return semihost(SYS_OPEN, c->sem);
}

/* Moves a whole frame: SYS_WRITE and SYS_READ return the number of bytes NOT transferred. */
static int transfer(struct cpu *c, long op, long fd, void *buf, long len)
{
	char *p = buf;
	while (len > 0) {
		c->sem[0] = (u64)fd;
		c->sem[1] = (u64)p;
		c->sem[2] = (u64)len;
		long left = semihost(op, c->sem);
		if (left < 0 || left > len)
			return -1;
		if (left == len && op == SYS_READ)
			return -1; /* end of file: the hypervisor is gone */
		p += len - left;
		len = left;
	}
	return 0;
}

static struct cpu *this_cpu(void)
{
	return &cpus[READ_SYSREG(mpidr_el1) & 0xff];
}

static void send(struct cpu *c, u16 type)
{
	c->req.magic = SMCV_MAGIC;
	c->req.version = SMCV_VERSION;
	c->req.type = type;
	c->req.vcpu = c->index;
	c->req.cntvct = READ_SYSREG(cntvct_el0);
	c->req.local_calls = c->local_calls;
	c->req.wa2_state = c->wa2_state;
	c->local_calls = 0;
	if (transfer(c, SYS_WRITE, c->req_fd, &c->req, sizeof(c->req)) != 0)
		park();
}

static struct reply *receive(struct cpu *c)
{
	if (transfer(c, SYS_READ, c->rsp_fd, &c->rsp, sizeof(c->rsp)) != 0)
		park();
	if (c->rsp.magic != SMCV_MAGIC || c->rsp.version != SMCV_VERSION)
		park();
	return &c->rsp;
}

static u64 stack_top(struct cpu *c)
{
	return (u64)stacks + (u64)(c->index + 1) * STACK_SIZE;
}

static void load_fast_table(struct reply *r)
{
	u32 n = r->count > FAST_ENTRIES ? FAST_ENTRIES : r->count;
	for (u32 i = 0; i < n; i++) {
		fast[i].key = r->x[2 * i];
		fast[i].value = r->x[2 * i + 1];
	}
	fast_count = n;
}

/* Commands that end in a physical PSCI call or a guest entry; they do not return. */
static void __attribute__((noreturn)) final_command(struct cpu *c, struct reply *r)
{
	u64 regs[18];
	zero(regs, sizeof(regs));
	switch (r->type) {
	case RSP_RESUME_AT: {
		if (r->flags & RESUME_WFI)
			__asm__ volatile("dsb sy; wfi");
		zero(c->regs, sizeof(c->regs));
		u64 entry = r->entry, spsr;
		if (r->flags & RESUME_AARCH32) {
			/* EL1 is AArch32: HCR_EL2.RW = 0 (TSC stays); SVC mode with A, I, F masked, T from entry bit 0 (DEN0022 §6.4.3). */
			WRITE_SYSREG(hcr_el2, 0x00080000ul);
			spsr = 0x1d3 | ((entry & 1) ? 0x20 : 0);
			entry &= ~1ul;
			for (int i = 0; i < 4; i++)
				c->regs[i] = (u32)r->x[i];
		} else {
			/* EL1h with D, A, I, F masked (DEN0022 §6.4.3). */
			WRITE_SYSREG(hcr_el2, 0x80080000ul);
			spsr = 0x3c5;
			for (int i = 0; i < 4; i++)
				c->regs[i] = r->x[i];
		}
		__asm__ volatile("isb");
		enter_guest(c->regs, stack_top(c), entry, spsr);
	}
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
static void physical_call(struct cpu *c, struct reply *r)
{
	u64 regs[18];
	for (int i = 0; i < 18; i++)
		regs[i] = r->x[i];
	u32 fid = (u32)regs[0];
	if (fid == PSCI_CPU_ON64 || fid == PSCI_CPU_ON32)
		regs[2] = (u64)secondary_entry;
	phys_smc(regs);
	zero(&c->req, sizeof(c->req));
	for (int i = 0; i < 18; i++)
		c->req.x[i] = regs[i];
	send(c, REQ_PHYS_RESULT);
}

/* An UNDEFINED exception for EL1 at the trapping instruction (Arm ARM D1.10; KVM inject_undef64). */
static void inject_undef(u64 esr)
{
	u64 elr = READ_SYSREG(elr_el2);
	u64 spsr = READ_SYSREG(spsr_el2);
	u32 ec = (u32)(esr >> 26);
	if (ec == EC_HVC64 || ec == EC_HVC32)
		elr -= (esr & (1u << 25)) ? 4 : 2; /* HVC's ELR is the next instruction */
	WRITE_SYSREG(esr_el1, 1ul << 25); /* EC 0 (unknown reason), IL */
	WRITE_SYSREG(elr_el1, elr);
	WRITE_SYSREG(spsr_el1, spsr);
	u64 offset;
	if (spsr & 0x10)
		offset = 0x600;
	else if (((spsr >> 2) & 3) == 0)
		offset = 0x400;
	else
		offset = (spsr & 1) ? 0x200 : 0x000;
	WRITE_SYSREG(elr_el2, READ_SYSREG(vbar_el1) + offset);
	WRITE_SYSREG(spsr_el2, 0x3c5);
}

/*
 * A call the hypervisor said the shim may answer itself (the fast table: side-effect-free calls such as
 * SMCCC_ARCH_WORKAROUND_1/3, and WORKAROUND_2 whose only effect is per-CPU state, reported in every
 * frame): x0 = the table's value and x1-x3 = 0, exactly as the router would answer, ELR past an SMC.
 */
static int answer_locally(struct cpu *c, u64 *frame, u32 esr)
{
	u32 ec = esr >> 26;
	if (fast_count == 0 || (esr & 0xffff) != 0 || (ec != EC_HVC64 && ec != EC_SMC64))
		return 0;
	u64 conduit = ec == EC_HVC64 ? FAST_HVC : FAST_SMC;
	u32 fid = (u32)frame[0];
	for (u32 i = 0; i < fast_count; i++) {
		if ((u32)fast[i].key != fid || !(fast[i].key & conduit))
			continue;
		if (fast[i].key & FAST_RECORD_WA2)
			c->wa2_state = (u32)frame[1] != 0 ? 2 : 1;
		frame[0] = fast[i].value;
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

/* Reports an exception the shim does not handle; the hypervisor stops the VM. */
static void __attribute__((noreturn)) unexpected(struct cpu *c, u64 esr, u64 *frame)
{
	zero(&c->req, sizeof(c->req));
	c->req.esr = (u32)esr;
	c->req.elr = READ_SYSREG(elr_el2);
	c->req.spsr = READ_SYSREG(spsr_el2);
	c->req.far = READ_SYSREG(far_el2);
	for (int i = 0; i < 18; i++)
		c->req.x[i] = frame ? frame[i] : 0;
	send(c, REQ_UNEXPECTED);
	receive(c);
	park();
}

/* Called from the vectors: kind = vector index (0-15), frame = x0..x30 of the interrupted context. */
void shim_exception(u64 kind, u64 *frame)
{
	struct cpu *c = this_cpu();
	u64 esr = READ_SYSREG(esr_el2);
	u32 ec = (u32)(esr >> 26);
	if (!c->open || (kind != 8 && kind != 12))
		unexpected(c, kind < 8 ? esr : (kind << 32) | esr, frame);
	if (ec != EC_HVC64 && ec != EC_SMC64 && ec != EC_HVC32 && ec != EC_SMC32)
		unexpected(c, esr, frame);
	if (answer_locally(c, frame, (u32)esr))
		return;

	zero(&c->req, sizeof(c->req));
	c->req.esr = (u32)esr;
	c->req.elr = READ_SYSREG(elr_el2);
	c->req.spsr = READ_SYSREG(spsr_el2);
	for (int i = 0; i < 18; i++)
		c->req.x[i] = frame[i];
	send(c, REQ_TRAP);
	for (;;) {
		struct reply *r = receive(c);
		switch (r->type) {
		case RSP_RETURN:
			for (u32 i = 0; i < r->count && i < 18; i++)
				frame[i] = r->x[i];
			WRITE_SYSREG(elr_el2, READ_SYSREG(elr_el2) + r->advance);
			return;
		case RSP_UNDEF:
			if (READ_SYSREG(spsr_el2) & 0x10)
				unexpected(c, esr, frame); /* UNDEF injection into AArch32 EL1 is not implemented */
			inject_undef(esr);
			return;
		case RSP_PHYS_SMC:
			physical_call(c, r);
			continue;
		case RSP_FAST_TABLE:
			load_fast_table(r);
			continue;
		default:
			final_command(c, r);
		}
	}
}

/* Every CPU comes here at EL2 once its registers are set up: the boot CPU at reset, others after CPU_ON. */
void shim_cpu_main(u64 index)
{
	struct cpu *c = &cpus[index];
	c->index = (u32)index;
	if (!c->open) {
		c->req_fd = open_fifo(c, ".req", 5 /* "wb" */);
		c->rsp_fd = open_fifo(c, ".rsp", 1 /* "rb" */);
		if (c->req_fd < 0 || c->rsp_fd < 0)
			park();
		c->open = 1;
	}
	zero(&c->req, sizeof(c->req));
	c->req.elr = (u64)_start;
	send(c, REQ_HELLO);
	for (;;) {
		struct reply *r = receive(c);
		if (r->type == RSP_PHYS_SMC)
			physical_call(c, r);
		else if (r->type == RSP_FAST_TABLE)
			load_fast_table(r);
		else
			final_command(c, r);
	}
}
