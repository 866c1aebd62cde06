/*
 * Shared definitions of the EL2 shim's C parts. The EL2 MMU is off, so every access is Device memory:
 * built with -mstrict-align, and all shared structures are naturally aligned.
 */
#ifndef SMCV_SHIM_H
#define SMCV_SHIM_H

#include "protocol.h"

#define STACK_SIZE 0x2000
#define DOORBELL_QSIZE 4

/* ESR_EL2 exception classes (Arm ARM D17.2.37). */
#define EC_HVC32 0x12
#define EC_SMC32 0x13
#define EC_HVC64 0x16
#define EC_SMC64 0x17
#define EC_IABT_LOWER 0x20
#define EC_DABT_LOWER 0x24

#define PSR_AA32 0x10ul

#define MMIO8(a) (*(volatile u8 *)(a))
#define MMIO32(a) (*(volatile u32 *)(a))
#define MMIO64(a) (*(volatile u64 *)(a))

#define READ_SYSREG(name) ({ u64 _v; __asm__ volatile("mrs %0, " #name : "=r"(_v)); _v; })
#define WRITE_SYSREG(name, v) __asm__ volatile("msr " #name ", %0" : : "r"((u64)(v)))

static inline void dmb(void) { __asm__ volatile("dmb ish" : : : "memory"); }
static inline void dmb_full(void) { __asm__ volatile("dmb sy" : : : "memory"); }
static inline void isb(void) { __asm__ volatile("isb" : : : "memory"); }

static inline const struct host_page *host(void) { return (const struct host_page *)HOST_PAGE; }

static inline void zero(void *p, unsigned long n)
{
	volatile u64 *q = p;
	for (unsigned long i = 0; i < n / 8; i++)
		q[i] = 0;
}

struct doorbell {
	u8 rx[4096] __attribute__((aligned(4096)));
	u8 tx[4096] __attribute__((aligned(4096)));
	u8 rx_buf[DOORBELL_QSIZE][16];
	u8 tx_buf;
	u8 ready;
	u16 rx_avail, rx_used, tx_avail;
	u64 base;
};

struct gic_save {
	u32 dist_ctlr;
	u32 cpu_ctlr;
	u32 pmr;
};

struct cpu {
	struct doorbell bell;
	struct mailbox *mb;
	u32 index;
	u32 seq;		/* the last request sequence number this CPU used */
	u32 booted;		/* the doorbell is set up for this boot */
	u32 el2_kernel;		/* HANDOVER_*: a handover VM's kernel owns EL2, or handed it over (shim.c) */
	u64 local_calls;
	u64 wa2_state;
	u64 aborts;
	u64 abort_ipa;
	u64 spin;		/* counter ticks this CPU polls for a reply before it sleeps (adapts) */
	u32 wake_seen;		/* the host's last wake request (mailbox wake_req) this CPU has acted on */
	u64 regs[31];
};

int doorbell_init(struct doorbell *d, u64 base);
void doorbell_ring(struct doorbell *d);
void doorbell_drain(struct doorbell *d);

void wake_boot(void);
void wake_arm(struct cpu *c, struct gic_save *s, int guest_too);
void wake_timer(u64 ticks);
int wake_possible(void);
void wake_clear(struct cpu *c);
void wake_disarm(struct cpu *c, const struct gic_save *s);
void wake_sources_off(struct cpu *c);
void wake_restore(const struct gic_save *s);

/* shim/suspend.c: a wait for a wake-up event; bound 0 waits for one, else at most `bound` ticks. */
void wait_wake(struct cpu *c, u64 bound);

/* SCTLR_EL1 as the shim sets it at reset: RES1 bits, MMU and caches off, little-endian (start.S). */
#define SCTLR_EL1_RESET 0x30d00800ul
struct reply *exchange(struct cpu *c, u16 type);
int mmio_access(struct cpu *c, u64 *frame, u32 esr);

void inject_undef(u64 *frame, u32 esr);
void inject_abort(u64 *frame, u32 esr, u64 far);

#endif
