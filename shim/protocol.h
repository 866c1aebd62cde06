/*
 * The shim <-> hypervisor channel, protocol version 4: docs/qemu-channel.md is the reference and
 * src/machine/qemu/channel.ts the hypervisor's side. Everything here lives in the shim's region of the
 * machine's RAM (PA 0x40000000 - 0x401FFFFF), which no stage-2 table maps: the guest cannot see it.
 * All integers little-endian; the hypervisor reaches the region through the shared RAM file (offset = PA -
 * 0x40000000).
 */
#ifndef SMCV_PROTOCOL_H
#define SMCV_PROTOCOL_H

typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

#define SMCV_MAGIC 0x56434D53u /* "SMCV": every frame */
#define SMCV_VERSION 4

/* The shim's region. The ELF (code, data, BSS with stacks and virtqueues) starts at its base. */
#define SHIM_BASE 0x40000000ul
#define SHIM_SIZE 0x00200000ul
/*
 * The shim's exception vectors (start.S, placed by shim.ld): a handover VM's kernel hands EL2 over by making
 * this its VBAR_EL2 through its hyp stub (HVC_SET_VECTORS, x1 = this address) and then calling
 * HVC_SET_VECTORS with the same address again, which now reaches the shim (docs/handover.md).
 */
#define HANDOVER_VECTORS (SHIM_BASE + 0x1800ul)
/* Written by the hypervisor before QEMU starts; read-only to the shim. */
#define HOST_PAGE (SHIM_BASE + 0x100000ul)
/* One page per vCPU: the mailbox both sides poll. */
#define MAILBOX_BASE (SHIM_BASE + 0x101000ul)
#define MAILBOX_STRIDE 0x1000ul
/* The hypervisor's running state (host_polling), on its own page. */
#define HOST_STATE (SHIM_BASE + 0x10F000ul)
/* The stage-2 translation tables, built by the hypervisor. */
#define STAGE2_BASE (SHIM_BASE + 0x180000ul)
#define STAGE2_SIZE 0x80000ul

#define MAX_CPUS 8
#define FAST_ENTRIES 8

/* Requests (shim -> hypervisor). */
#define REQ_HELLO 1
#define REQ_TRAP 2
#define REQ_PHYS_RESULT 3
#define REQ_UNEXPECTED 4
#define REQ_MMIO 5		/* a guest access to an emulated device window (virtio-mmio): ESR/FAR say which */
#define REQ_HANDOVER 6		/* the running kernel handed EL2 to the shim through its hyp stub */

/* Replies (hypervisor -> shim). */
#define RSP_RETURN 1
#define RSP_UNDEF 2
#define RSP_PHYS_SMC 3
#define RSP_RESUME_AT 4
#define RSP_CPU_OFF 5
#define RSP_SYSTEM_OFF 6
#define RSP_SYSTEM_RESET 7
#define RSP_STOP 8
#define RSP_MMIO 9		/* completes a REQ_MMIO: x0 is the value a read returns */
#define RSP_RESTART 10		/* hyp-stub HVC_SOFT_RESTART: enter `entry` at EL1, MMU off, stage 2 kept (the stub would at EL2) */
#define RSP_RETURN_WAKE 11	/* RETURN, then wait for a wake-up event before EL1 runs again */

#define RESUME_WFI 1u
#define RESUME_AARCH32 2u /* EL1 runs AArch32 (HCR_EL2.RW = 0), entering in SVC mode; bit 0 of entry = Thumb */
#define RESUME_EL2 4u /* enter the guest at EL2 with no stage 2 (a kernel booted as on a board without a hypervisor) */
#define RESUME_WAKE 8u /* wait for a wake-up event (a pending interrupt for the vCPU) before entering */

/* Fast-table key bits above the function ID. */
#define FAST_HVC (1ul << 32)
#define FAST_SMC (1ul << 33)
#define FAST_RECORD_WA2 (1ul << 34) /* W1 is this CPU's SMCCC_ARCH_WORKAROUND_2 state */

#define HOST_MAGIC 0x48434D53u /* "SMCH" */
#define HOST_GICV3 1u
#define HOST_HANDOVER 2u /* the VM boots at EL2 and may hand EL2 over later */
#define HOST_WAKE 4u /* the shim waits for the guest's wake-up events (GIC virtual CPU interface) */
#define HOST_MMIO 8u /* stage 2 leaves the device window unmapped: accesses become REQ_MMIO */

/*
 * The device window (IPA), with HOST_MMIO: a guest access there with a full syndrome (ISV = 1) is a
 * REQ_MMIO, `far` = the IPA, x0 = the value a write stores. RSP_MMIO: x0 = the value a read loads (already
 * extended to the register's width), x1 = an SPI INTID to make pending (0: none), flags MMIO_REFUSE: the
 * guest gets a synchronous external abort instead. docs/devices.md.
 */
#define MMIO_WINDOW 0x0C000000ul
#define MMIO_WINDOW_SIZE 0x1000ul
#define MMIO_REFUSE 1u

/* What the hypervisor tells every CPU of this machine (one page at HOST_PAGE). */
struct host_page {
	u32 magic;
	u32 version;
	u32 vcpus;
	u32 flags;		/* HOST_GICV3 */
	u64 vttbr;		/* VTTBR_EL2: the stage-2 level-1 table (PA) | VMID << 48 */
	u64 vtcr;		/* VTCR_EL2 */
	u64 gicd;		/* GIC distributor (PA) */
	u64 gicc;		/* GICv2 CPU interface (PA), or GICv3 redistributor of vCPU 0 (stride 0x20000) */
	u64 doorbell;		/* virtio-mmio transport of vCPU 0's doorbell (PA), stride 0x200 */
	u32 doorbell_intid;	/* its interrupt ID; vCPU n's is doorbell_intid + n */
	u32 spin_ticks;		/* counter ticks a waiting CPU polls its mailbox before it sleeps */
	u32 sleep_ticks;	/* longest sleep before a CPU looks again without a doorbell */
	u32 fast_count;
	u64 fast[2 * FAST_ENTRIES]; /* fixed answers: key (fid | FAST_*), x0 */
};

struct request {
	u32 magic;
	u16 version;
	u16 type;
	u32 vcpu;
	u32 esr;
	u64 elr;
	u64 spsr;
	u64 far;
	u64 cntvct;
	u64 local_calls;	/* calls the shim answered from the fast table since its previous request */
	u64 wa2_state;		/* SMCCC_ARCH_WORKAROUND_2 as last set through the fast table: 0 unknown, 1 off, 2 on */
	u64 aborts;		/* accesses outside the stage-2 map refused since the previous request */
	u64 abort_ipa;		/* the last one's IPA (HPFAR_EL2 with FAR's page offset) */
	u64 x[18];
};

struct reply {
	u32 magic;
	u16 version;
	u16 type;
	u32 count;
	u32 advance;
	u64 entry;
	u64 flags;
	u64 reserved;
	u64 x[18];
};

/*
 * One vCPU's mailbox. The shim writes `req` and then increments req_seq; the hypervisor writes `rsp` and then
 * sets rsp_seq to the req_seq it answers. `sleeping` is 1 while the shim may be waiting for an interrupt: the
 * hypervisor then rings the vCPU's doorbell after answering. Every request gets exactly one reply.
 */
struct mailbox {
	volatile u32 req_seq;
	volatile u32 rsp_seq;
	volatile u32 sleeping;
	/* Wake-up waits (shim/suspend.c): the host asks, the shim counts. */
	volatile u32 wake_req;		/* 0x0c host: bumped to wake the vCPU from a wake-up wait (a host wake-up event) */
	volatile u32 waiting;		/* 0x10 shim: 1 while it waits for a wake-up event (the host then rings) */
	volatile u32 wakes;		/* 0x14 shim: wake-up waits ended, by any cause */
	volatile u32 wakes_irq;		/* 0x18 ... by an interrupt pending for the guest */
	volatile u32 wakes_host;	/* 0x1c ... by the host (wake_req) */
	volatile u32 wakes_bound;	/* 0x20 ... a standby wait that reached its bound (sleep_ticks) */
	volatile u32 wake_lat_last;	/* 0x24 ticks from the guest's virtual timer condition to the resume, last one */
	volatile u32 wake_lat_count;	/* 0x28 timer wake-ups measured */
	volatile u32 wake_lat_max;	/* 0x2c the largest */
	volatile u64 wake_lat_sum;	/* 0x30 their sum */
	volatile u32 blocked_waits;	/* 0x38 shim: waits that polled, since no wake source could end a WFI (gic.c) */
	u32 reserved;
	struct request req;	/* offset 0x40 */
	u32 pad[8];
	struct reply rsp;	/* offset 0x140 */
};

/*
 * After struct mailbox, in the same page: the latencies (counter ticks) of the last WAKE_LOG_SIZE timer
 * wake-ups, a ring indexed by wake_lat_count (entry (n - 1) % WAKE_LOG_SIZE is the n-th), so the host can
 * take their median.
 */
#define WAKE_LOG_OFFSET 0x800
#define WAKE_LOG_SIZE 256

/*
 * The hypervisor's side: `polling` is 1 while it polls every mailbox (the shim then need not ring);
 * `spin_ticks`, when not 0, replaces the host page's: how long a waiting CPU polls now. The hypervisor
 * shortens it while the vCPUs that are working need every host core, where a CPU polling for its reply
 * would take the core the hypervisor needs to answer it.
 */
struct host_state {
	volatile u32 polling;
	volatile u32 spin_ticks;
};

_Static_assert(sizeof(struct request) == 224, "request frame is 224 bytes");
_Static_assert(sizeof(struct reply) == 184, "reply frame is 184 bytes");
_Static_assert(__builtin_offsetof(struct mailbox, req) == 0x40, "request at 0x40");
_Static_assert(__builtin_offsetof(struct mailbox, rsp) == 0x140, "reply at 0x140");
_Static_assert(__builtin_offsetof(struct mailbox, wake_lat_sum) == 0x30, "wake latency sum at 0x30");
_Static_assert(__builtin_offsetof(struct mailbox, blocked_waits) == 0x38, "blocked waits at 0x38");
_Static_assert(sizeof(struct mailbox) <= WAKE_LOG_OFFSET, "the wake log follows the mailbox");
_Static_assert(WAKE_LOG_OFFSET + 4 * WAKE_LOG_SIZE <= MAILBOX_STRIDE, "a mailbox and its wake log fit their page");
_Static_assert(sizeof(struct host_page) == 200, "host page is 200 bytes");

#endif
