/*
 * The EL2 shim's entry points, exception vectors and guest entry. QEMU's `virt` machine with
 * virtualization=on starts the boot CPU here at EL2 (the ELF entry); secondaries arrive at
 * secondary_entry through QEMU's own PSCI CPU_ON, which the shim issues on the hypervisor's command.
 * The register settings: docs/qemu-channel.md, "EL2 set-up", and the Arm ARM (DDI 0487) D13.
 */
#define STACK_SIZE 0x2000
#define MAX_CPUS 8
#define FRAME_SIZE 272 /* x0..x30, ELR, SPSR, padding: 16-byte aligned */

	.section .text.boot, "ax"
	.global _start
_start:
	mov	x20, #1			/* cold: the machine (re)started */
	b	cpu_entry

	/* At a fixed offset so the image layout is easy to check with objdump. */
	.org 0x40
	.global secondary_entry
secondary_entry:
	mov	x20, #0
	b	cpu_entry

cpu_entry:
	mrs	x19, mpidr_el1
	and	x19, x19, #0xff		/* Aff0 is the CPU index on virt for up to 8 CPUs */
	cmp	x19, #MAX_CPUS
	b.hs	park
	ldr	x1, =stacks
	mov	x2, #STACK_SIZE
	madd	x1, x19, x2, x1
	add	x1, x1, x2
	mov	sp, x1

	ldr	x0, =vectors
	msr	vbar_el2, x0

	/*
	 * HCR_EL2: RW (EL1 is AArch64) | TSC (trap SMC); stage 2 (VM) is switched on with the first entry into
	 * EL1 (shim.c). IMO/FMO stay 0: interrupts belong to EL1.
	 */
	ldr	x0, =0x80080000
	msr	hcr_el2, x0
	/* CPTR_EL2: no FP/SIMD trap (RES1 bits only). */
	mov	x0, #0x33ff
	msr	cptr_el2, x0
	/* CNTHCTL_EL2: EL1PCTEN | EL1PCEN; the guest owns its timers. */
	mov	x0, #3
	msr	cnthctl_el2, x0
	msr	cntvoff_el2, xzr
	/* MDCR_EL2.HPMN = PMCR_EL0.N so the guest sees every PMU counter. */
	/* (Only with a PMU: ID_AA64DFR0_EL1.PMUVer != 0; PMCR_EL0 is UNDEFINED without one.) */
	mov	x0, #0
	mrs	x1, id_aa64dfr0_el1
	ubfx	x1, x1, #8, #4
	cbz	x1, 2f
	mrs	x0, pmcr_el0
	ubfx	x0, x0, #11, #5
2:	msr	mdcr_el2, x0
	/* The guest sees the real MIDR and MPIDR. */
	mrs	x0, midr_el1
	msr	vpidr_el2, x0
	mrs	x0, mpidr_el1
	msr	vmpidr_el2, x0
	/* SCTLR_EL1: RES1 bits, MMU off, little-endian. */
	ldr	x0, =0x30d00800
	msr	sctlr_el1, x0
	/* GICv3 system registers (ID_AA64PFR0_EL1.GIC != 0): let EL1 use them. */
	mrs	x0, id_aa64pfr0_el1
	ubfx	x0, x0, #24, #4
	cbz	x0, 1f
	mov	x0, #0x9		/* ICC_SRE_EL2.SRE | Enable */
	msr	S3_4_C12_C9_5, x0
	isb
	msr	S3_4_C12_C11_0, xzr	/* ICH_HCR_EL2 = 0: no virtual interface */
1:	isb
	mov	x0, x19
	mov	x1, x20
	bl	shim_cpu_main
park:
	wfe
	b	park

/*
 * enter_guest(regs, sp_top, entry, spsr): x0..x30 from regs[], ELR = entry, SPSR = spsr, and this CPU's
 * EL2 stack reset so a resume from inside a trap does not leave frames behind.
 */
	.global enter_guest
enter_guest:
	mov	sp, x1
	msr	elr_el2, x2
	msr	spsr_el2, x3
	mov	x30, x0
	ldp	x0, x1, [x30, #0]
	ldp	x2, x3, [x30, #16]
	ldp	x4, x5, [x30, #32]
	ldp	x6, x7, [x30, #48]
	ldp	x8, x9, [x30, #64]
	ldp	x10, x11, [x30, #80]
	ldp	x12, x13, [x30, #96]
	ldp	x14, x15, [x30, #112]
	ldp	x16, x17, [x30, #128]
	ldp	x18, x19, [x30, #144]
	ldp	x20, x21, [x30, #160]
	ldp	x22, x23, [x30, #176]
	ldp	x24, x25, [x30, #192]
	ldp	x26, x27, [x30, #208]
	ldp	x28, x29, [x30, #224]
	ldr	x30, [x30, #240]
	eret

/* phys_smc(regs): smc #0 with x0..x17 from regs[], results stored back. */
	.global phys_smc
phys_smc:
	stp	x29, x30, [sp, #-32]!
	str	x0, [sp, #16]
	mov	x18, x0
	ldp	x0, x1, [x18, #0]
	ldp	x2, x3, [x18, #16]
	ldp	x4, x5, [x18, #32]
	ldp	x6, x7, [x18, #48]
	ldp	x8, x9, [x18, #64]
	ldp	x10, x11, [x18, #80]
	ldp	x12, x13, [x18, #96]
	ldp	x14, x15, [x18, #112]
	ldp	x16, x17, [x18, #128]
	smc	#0
	ldr	x18, [sp, #16]
	stp	x0, x1, [x18, #0]
	stp	x2, x3, [x18, #16]
	stp	x4, x5, [x18, #32]
	stp	x6, x7, [x18, #48]
	stp	x8, x9, [x18, #64]
	stp	x10, x11, [x18, #80]
	stp	x12, x13, [x18, #96]
	stp	x14, x15, [x18, #112]
	stp	x16, x17, [x18, #128]
	ldp	x29, x30, [sp], #32
	ret

/* Exception vectors: every entry saves the interrupted context and calls shim_exception(kind, frame). */
.macro ventry kind
	.balign 0x80
	sub	sp, sp, #FRAME_SIZE
	stp	x0, x1, [sp, #0]
	mov	x0, #\kind
	b	exception_common
.endm

/*
 * From a lower EL the shim never has a frame of its own on the stack (it enters EL1 with its stack empty:
 * enter_guest, and exception_common's return), so the entry takes this CPU's stack top afresh from MPIDR, as
 * cpu_entry does, before it stores anything. A handover VM's secondary CPU needs it: its kernel started it
 * through QEMU's PSCI (at EL2, in the kernel), so it never ran cpu_entry, and SP_EL2 there is whatever reset
 * or the kernel left (Linux does not set it). TPIDR_EL2 holds x0 meanwhile: nothing else at EL2 uses it.
 */
.if STACK_SIZE != (1 << 13)
.error "ventry_lower computes a stack top as (index + 1) << 13"
.endif
.macro ventry_lower kind
	.balign 0x80
	msr	tpidr_el2, x0
	mrs	x0, mpidr_el1
	and	x0, x0, #0xff
	cmp	x0, #MAX_CPUS
	b.hs	park
	add	x0, x0, #1
	lsl	x0, x0, #13
	mov	sp, x0
	adrp	x0, stacks
	add	x0, x0, :lo12:stacks
	add	sp, sp, x0
	mrs	x0, tpidr_el2
	sub	sp, sp, #FRAME_SIZE
	stp	x0, x1, [sp, #0]
	mov	x0, #\kind
	b	exception_common
.endm

	/*
	 * At a fixed address, 0x40001800 (shim.ld checks it): a handover guest's kernel installs this table as
	 * its VBAR_EL2 through its hyp stub's HVC_SET_VECTORS (docs/handover.md), so the address is published.
	 */
	.balign 0x800
	.global vectors
vectors:
	ventry 0	/* current EL, SP0: sync */
	ventry 1
	ventry 2
	ventry 3
	ventry 4	/* current EL, SPx: sync (a shim fault) */
	ventry 5
	ventry 6
	ventry 7
	ventry_lower 8	/* lower EL, AArch64: sync (HVC, trapped SMC, ...) */
	ventry_lower 9	/* IRQ */
	ventry_lower 10	/* FIQ */
	ventry_lower 11	/* SError */
	ventry_lower 12	/* lower EL, AArch32: sync */
	ventry_lower 13
	ventry_lower 14
	ventry_lower 15

exception_common:
	stp	x2, x3, [sp, #16]
	stp	x4, x5, [sp, #32]
	stp	x6, x7, [sp, #48]
	stp	x8, x9, [sp, #64]
	stp	x10, x11, [sp, #80]
	stp	x12, x13, [sp, #96]
	stp	x14, x15, [sp, #112]
	stp	x16, x17, [sp, #128]
	stp	x18, x19, [sp, #144]
	stp	x20, x21, [sp, #160]
	stp	x22, x23, [sp, #176]
	stp	x24, x25, [sp, #192]
	stp	x26, x27, [sp, #208]
	stp	x28, x29, [sp, #224]
	str	x30, [sp, #240]
	mov	x1, sp
	bl	shim_exception
	ldp	x0, x1, [sp, #0]
	ldp	x2, x3, [sp, #16]
	ldp	x4, x5, [sp, #32]
	ldp	x6, x7, [sp, #48]
	ldp	x8, x9, [sp, #64]
	ldp	x10, x11, [sp, #80]
	ldp	x12, x13, [sp, #96]
	ldp	x14, x15, [sp, #112]
	ldp	x16, x17, [sp, #128]
	ldp	x18, x19, [sp, #144]
	ldp	x20, x21, [sp, #160]
	ldp	x22, x23, [sp, #176]
	ldp	x24, x25, [sp, #192]
	ldp	x26, x27, [sp, #208]
	ldp	x28, x29, [sp, #224]
	ldr	x30, [sp, #240]
	add	sp, sp, #FRAME_SIZE
	eret

	.section .bss
	.balign 16
	.global stacks
stacks:
	.space STACK_SIZE * MAX_CPUS
