// SPDX-License-Identifier: GPL-2.0
/*
 * smcv_handover: hands EL2 to smcvisor from a Linux kernel that booted at EL2 and kept its hyp stub
 * (kvm-arm.mode=none), as on a board with no hypervisor under it. docs/handover.md tells the whole flow.
 *
 * At load:
 *   1. PSCI_VERSION over SMC: answered by whatever is under the kernel now (QEMU's PSCI, unseen by smcvisor);
 *   2. on every online CPU at once, under stop_machine() (each CPU with interrupts off, none running
 *      anything else until all are done), each CPU's EL2 being its own:
 *      a. HVC_SET_VECTORS (x0 = 0, x1 = the shim's vectors, from the device tree's /smcvisor node): the
 *         kernel's own stub makes them VBAR_EL2 (arch/arm64/kernel/hyp-stub.S);
 *      b. HVC_SET_VECTORS again with the same address: it now reaches the shim, which takes EL2 over (stage
 *         2, the SMC trap) and answers 0;
 *   3. PSCI_VERSION over SMC again on each online CPU: now trapped, traced and answered by smcvisor's policy.
 * Each step's result is printed as "smcv_handover: ..." on the console, per CPU where it is per CPU.
 *
 * For smcvisor's test of a VM it does not contain, `insmod smcv_handover.ko only_this_cpu=1` hands over the
 * loading CPU only, as the module did before smcvisor took handover VMs with more than one vCPU: the other
 * CPUs keep EL2, which smcvisor must notice (docs/handover.md, "More than one vCPU").
 *
 * Then, for the scenario's shell (root only): writing "x0 [x1 [x2 [x3 [x4]]]]" (hex) to
 * /sys/module/smcv_handover/parameters/smc or .../hvc makes that call and prints x0..x3 of the result.
 * Writing a function ID (hex) to .../soft_restart makes HVC_SOFT_RESTART into two instructions of its own,
 * `smc #0; b .`, with the ID as the x2 the stub passes on as x0: the CPU never comes back to the kernel.
 */
#include <linux/cpumask.h>
#include <linux/smp.h>
#include <linux/stop_machine.h>
#include <linux/irqflags.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/of.h>
#include <linux/gfp.h>
#include <linux/ktime.h>
#include <asm/memory.h>

#define HVC_SET_VECTORS 0
#define HVC_SOFT_RESTART 1
#define PSCI_VERSION 0x84000000ul

struct regs {
	unsigned long x[4];
};

/* One SMC or HVC #0 with x0..x4; x0..x3 come back. The callee may clobber x4..x17 (SMCCC 1.0, virt.h). */
#define CALL(insn)								\
static struct regs call_##insn(unsigned long a0, unsigned long a1, unsigned long a2,	\
			       unsigned long a3, unsigned long a4)		\
{										\
	register unsigned long x0 asm("x0") = a0;				\
	register unsigned long x1 asm("x1") = a1;				\
	register unsigned long x2 asm("x2") = a2;				\
	register unsigned long x3 asm("x3") = a3;				\
	register unsigned long x4 asm("x4") = a4;				\
	struct regs r;								\
	asm volatile(#insn " #0"						\
		     : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3), "+r"(x4)		\
		     :								\
		     : "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13",	\
		       "x14", "x15", "x16", "x17", "memory");			\
	r.x[0] = x0;								\
	r.x[1] = x1;								\
	r.x[2] = x2;								\
	r.x[3] = x3;								\
	return r;								\
}
CALL(smc)
CALL(hvc)

static int parse_and_call(const char *val, int hvc)
{
	unsigned long long a[5] = { 0 };
	struct regs r;
	int n = sscanf(val, "%llx %llx %llx %llx %llx", &a[0], &a[1], &a[2], &a[3], &a[4]);

	if (n < 1)
		return -EINVAL;
	r = hvc ? call_hvc(a[0], a[1], a[2], a[3], a[4]) : call_smc(a[0], a[1], a[2], a[3], a[4]);
	pr_info("smcv_handover: %s x0=%#llx x1=%#llx: x0=%#lx x1=%#lx x2=%#lx x3=%#lx\n", hvc ? "hvc" : "smc",
		a[0], a[1], r.x[0], r.x[1], r.x[2], r.x[3]);
	return 0;
}

static int set_smc(const char *val, const struct kernel_param *kp)
{
	return parse_and_call(val, 0);
}

static int set_hvc(const char *val, const struct kernel_param *kp)
{
	return parse_and_call(val, 1);
}

/*
 * HVC_SOFT_RESTART into `smc #0; b .` on a page of its own, with x2 = `fid` (hyp-stub.S passes x2..x4 on as
 * x0..x2). The page is cleaned to the point of coherency first: the code runs with the MMU and caches off.
 */
static int set_soft_restart(const char *val, const struct kernel_param *kp)
{
	unsigned long long fid;
	unsigned long page, line;
	struct regs r;
	u32 *code;

	if (kstrtoull(val, 16, &fid))
		return -EINVAL;
	page = __get_free_page(GFP_KERNEL);
	if (!page)
		return -ENOMEM;
	code = (u32 *)page;
	code[0] = 0xd4000003; /* smc #0 */
	code[1] = 0x14000000; /* b . */
	line = page & ~63ul;
	asm volatile("dc civac, %0; dsb sy; ic iallu; dsb sy; isb" : : "r"(line) : "memory");
	pr_info("smcv_handover: HVC_SOFT_RESTART to %#llx, which makes SMC %#llx\n", (unsigned long long)__pa(page), fid);
	local_irq_disable();
	r = call_hvc(HVC_SOFT_RESTART, __pa(page), fid, 0, 0);
	local_irq_enable();
	pr_info("smcv_handover: HVC_SOFT_RESTART returned x0=%#lx\n", r.x[0]);
	free_page(page);
	return 0;
}

static const struct kernel_param_ops soft_restart_ops = { .set = set_soft_restart };
module_param_cb(soft_restart, &soft_restart_ops, NULL, 0200);
MODULE_PARM_DESC(soft_restart, "write a function ID (hex): HVC_SOFT_RESTART into `smc #0; b .` with x0 = that ID");

static const struct kernel_param_ops smc_ops = { .set = set_smc };
static const struct kernel_param_ops hvc_ops = { .set = set_hvc };
module_param_cb(smc, &smc_ops, NULL, 0200);
MODULE_PARM_DESC(smc, "write \"x0 [x1 ...]\" (hex): make that SMC and print the result");
module_param_cb(hvc, &hvc_ops, NULL, 0200);
MODULE_PARM_DESC(hvc, "write \"x0 [x1 ...]\" (hex): make that HVC and print the result");

/* The mean time of `n` PSCI_VERSION calls over SMC, in ns: what one call costs whoever answers it. */
static u64 smc_cost(unsigned int n)
{
	u64 start = ktime_get_ns();

	for (unsigned int i = 0; i < n; i++)
		call_smc(PSCI_VERSION, 0, 0, 0, 0);
	return (ktime_get_ns() - start) / n;
}

#define COST_CALLS 200

/* What each CPU's two HVC_SET_VECTORS answered: its own stub's, then smcvisor's. */
struct claim {
	unsigned long stub, smcvisor;
	int done;
};

static u64 vectors;
static struct claim claims[NR_CPUS];

static bool only_this_cpu;
module_param(only_this_cpu, bool, 0400);
MODULE_PARM_DESC(only_this_cpu, "test hook: hand over the loading CPU only, leaving the others their EL2");

/* Runs on every online CPU at once, interrupts off (stop_machine): the second HVC is the handover itself. */
static int hand_over_this_cpu(void *unused)
{
	struct claim *c = &claims[smp_processor_id()];

	c->stub = call_hvc(HVC_SET_VECTORS, vectors, 0, 0, 0).x[0];
	c->smcvisor = call_hvc(HVC_SET_VECTORS, vectors, 0, 0, 0).x[0];
	c->done = 1;
	return 0;
}

static void psci_version_here(void *out)
{
	((unsigned long *)out)[smp_processor_id()] = call_smc(PSCI_VERSION, 0, 0, 0, 0).x[0];
}

static unsigned long versions[NR_CPUS];

static int __init smcv_handover_init(void)
{
	struct device_node *np = of_find_node_by_path("/smcvisor");
	struct regs before;
	unsigned int cpu;
	int err;

	if (!np)
		return -ENODEV;
	err = of_property_read_u64(np, "handover-vectors", &vectors);
	of_node_put(np);
	if (err) {
		pr_err("smcv_handover: /smcvisor has no handover-vectors\n");
		return err;
	}
	before = call_smc(PSCI_VERSION, 0, 0, 0, 0);
	pr_info("smcv_handover: before the handover: PSCI_VERSION=%#lx\n", before.x[0]);
	pr_info("smcv_handover: before the handover: %llu ns per PSCI_VERSION (%d calls)\n", smc_cost(COST_CALLS), COST_CALLS);
	/*
	 * Every online CPU at once: cpus_read_lock inside stop_machine keeps the set fixed, and no CPU runs
	 * anything but this until all have handed over, so none runs the kernel at will with EL2 its own while
	 * another is already behind smcvisor.
	 */
	if (only_this_cpu) {
		unsigned long flags;

		local_irq_save(flags);
		err = hand_over_this_cpu(NULL);
		local_irq_restore(flags);
	} else {
		err = stop_machine(hand_over_this_cpu, NULL, cpu_online_mask);
	}
	if (err) {
		pr_err("smcv_handover: stop_machine failed (%d)\n", err);
		return err;
	}
	for_each_online_cpu(cpu) {
		if (!claims[cpu].done)
			pr_err("smcv_handover: CPU %u did not hand over\n", cpu);
		else
			pr_info("smcv_handover: HVC_SET_VECTORS %#llx: stub=%#lx smcvisor=%#lx (CPU %u)\n", vectors,
				claims[cpu].stub, claims[cpu].smcvisor, cpu);
	}
	on_each_cpu(psci_version_here, versions, 1);
	for_each_online_cpu(cpu)
		pr_info("smcv_handover: after the handover: PSCI_VERSION=%#lx (CPU %u)\n", versions[cpu], cpu);
	pr_info("smcv_handover: after the handover: %llu ns per PSCI_VERSION (%d calls)\n", smc_cost(COST_CALLS), COST_CALLS);
	return 0;
}

static void __exit smcv_handover_exit(void)
{
	/* EL2 stays smcvisor's: there is nothing to give back. */
}

module_init(smcv_handover_init);
module_exit(smcv_handover_exit);
MODULE_DESCRIPTION("Hands EL2 to smcvisor through the hyp stub (HVC_SET_VECTORS)");
MODULE_LICENSE("GPL");
