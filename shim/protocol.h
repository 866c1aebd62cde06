/*
 * The shim <-> hypervisor channel, protocol version 2: docs/qemu-channel.md is the reference and
 * src/machine/qemu/channel.ts the hypervisor's side. Fixed-size little-endian frames.
 */
#ifndef SMCV_PROTOCOL_H
#define SMCV_PROTOCOL_H

typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned short u16;

#define SMCV_MAGIC 0x56434D53u /* "SMCV" */
#define SMCV_VERSION 2

/* Requests (shim -> hypervisor). */
#define REQ_HELLO 1
#define REQ_TRAP 2
#define REQ_PHYS_RESULT 3
#define REQ_UNEXPECTED 4

/* Replies (hypervisor -> shim). */
#define RSP_RETURN 1
#define RSP_UNDEF 2
#define RSP_PHYS_SMC 3
#define RSP_RESUME_AT 4
#define RSP_CPU_OFF 5
#define RSP_SYSTEM_OFF 6
#define RSP_SYSTEM_RESET 7
#define RSP_STOP 8
#define RSP_FAST_TABLE 9

#define RESUME_WFI 1u
#define RESUME_AARCH32 2u /* EL1 runs AArch32 (HCR_EL2.RW = 0), entering in SVC mode; bit 0 of entry = Thumb */

/* Fast-table key bits above the function ID. */
#define FAST_HVC (1ul << 32)
#define FAST_SMC (1ul << 33)
#define FAST_RECORD_WA2 (1ul << 34) /* W1 is this CPU's SMCCC_ARCH_WORKAROUND_2 state */

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
	u64 local_calls;
	/* SMCCC_ARCH_WORKAROUND_2 as the guest last set it through the fast table: 0 unknown, 1 off, 2 on. */
	u64 wa2_state;
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

_Static_assert(sizeof(struct request) == 208, "request frame is 208 bytes");
_Static_assert(sizeof(struct reply) == 184, "reply frame is 184 bytes");

#endif
