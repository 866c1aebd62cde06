/*
 * The bare-metal conformance guest's entry points, loaded like a Linux Image (x0 = device tree, unused).
 * The boot vCPU enters at offset 0, vCPUs started by PSCI CPU_ON at offset 0x40 with x0 = context.
 * Runs at EL1 with the MMU off; one stack per vCPU indexed by MPIDR.Aff0.
 */
#define STACK_SIZE 0x4000
#define MAX_CPUS 8

	.section .text.boot, "ax"
	.global _start
_start:
	/*
	 * An arm64 Image header (Linux Documentation/arch/arm64/booting.rst), so QEMU's own loader places
	 * the guest where smcvisor does when it runs under QEMU's built-in PSCI as a peer: text_offset 2 MiB.
	 */
	b	primary_entry		/* code0 */
	.word	0			/* code1 */
	.quad	0x200000		/* text_offset */
	.quad	0x400000		/* image_size: code, BSS and the script after it */
	.quad	0			/* flags: little-endian */
	.quad	0, 0, 0			/* res2..res4 */
	.ascii	"ARM\x64"		/* magic */
	.word	0			/* res5 */

	.org 0x40
	.global secondary_entry
secondary_entry:
	mov	x20, #1
	mov	x21, x0			/* PSCI context */
	b	common
primary_entry:
	mov	x20, #0			/* boot vCPU */
	mov	x21, x0
common:
	mrs	x19, mpidr_el1
	and	x19, x19, #0xff
	cmp	x19, #MAX_CPUS
	b.hs	hang
	ldr	x1, =stacks
	mov	x2, #STACK_SIZE
	madd	x1, x19, x2, x1
	add	x1, x1, x2
	mov	sp, x1
	/* Clear BSS once, on the boot vCPU (an image reloaded at reset gets it cleared again). */
	cbnz	x20, 2f
	ldr	x1, =__bss_start
	ldr	x2, =__bss_end
1:	cmp	x1, x2
	b.hs	2f
	str	xzr, [x1], #8
	b	1b
2:	ldr	x1, =el1_vectors
	msr	vbar_el1, x1
	isb
	mov	x0, x19
	mov	x1, x20
	mov	x2, x21
	bl	guest_main
hang:
	wfe
	b	hang

/* call(regs, conduit): x0..x17 from regs[], hvc #0 (conduit 0) or smc #0 (1), results stored back. */
	.global call
call:
	stp	x29, x30, [sp, #-32]!
	str	x0, [sp, #16]
	mov	x18, x0
	mov	x30, x1
	ldp	x0, x1, [x18, #0]
	ldp	x2, x3, [x18, #16]
	ldp	x4, x5, [x18, #32]
	ldp	x6, x7, [x18, #48]
	ldp	x8, x9, [x18, #64]
	ldp	x10, x11, [x18, #80]
	ldp	x12, x13, [x18, #96]
	ldp	x14, x15, [x18, #112]
	ldp	x16, x17, [x18, #128]
	cmp	x30, #2
	b.eq	5f
	cmp	x30, #3
	b.eq	6f
	cbnz	x30, 3f
	hvc	#0
	b	4f
5:	hvc	#1			/* a non-zero immediate: not an SMCCC call (SMCCC §2.9) */
	b	4f
6:	smc	#1
	b	7f
3:	smc	#0
7:
	/* The instruction after the SMC: it must run exactly once (R10). */
	ldr	x18, =after_smc
	ldr	x30, [x18]
	add	x30, x30, #1
	str	x30, [x18]
4:	ldr	x18, [sp, #16]
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

/*
 * EL1 vectors: the exceptions this guest expects are an UNDEFINED instruction the hypervisor injects (Xen's
 * answer to an HVC or SMC with a non-zero immediate, or a semihosting HLT on a host without semihosting) and
 * the synchronous external aborts the hypervisor injects for the probes of addresses outside the VM's map.
 * Count it, keep ESR_EL1 and FAR_EL1, and resume at probe_resume when a probe set it, else after the
 * instruction.
 */
	.balign 0x800
el1_vectors:
	.skip 0x200
	/* current EL with SP_ELx, synchronous */
	stp	x0, x1, [sp, #-16]!
	ldr	x0, =undefs
	ldr	x1, [x0]
	add	x1, x1, #1
	str	x1, [x0]
	mrs	x1, esr_el1
	str	x1, [x0, #8]
	mrs	x1, far_el1
	str	x1, [x0, #16]
	ldr	x0, =probe_resume
	ldr	x1, [x0]
	cbz	x1, 1f
	str	xzr, [x0]
	msr	elr_el1, x1
	b	2f
1:	mrs	x1, elr_el1
	add	x1, x1, #4
	msr	elr_el1, x1
2:	ldp	x0, x1, [sp], #16
	eret
	.balign 0x800

/* probe_exec(addr): branch to addr; an instruction abort there resumes after the branch. */
	.global probe_exec
probe_exec:
	stp	x29, x30, [sp, #-16]!
	adr	x1, 1f
	ldr	x2, =probe_resume
	str	x1, [x2]
	blr	x0
1:	ldr	x2, =probe_resume
	str	xzr, [x2]
	ldp	x29, x30, [sp], #16
	ret

	.section .bss
	.balign 16
	.global undefs
undefs:
	.space 24			/* count, last ESR_EL1, last FAR_EL1 */
	.global probe_resume
probe_resume:
	.space 8
stacks:
	.space STACK_SIZE * MAX_CPUS
