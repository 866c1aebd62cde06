/*
 * The bare-metal conformance guest's entry points for AArch32 EL1 (A32): the same program as start.S,
 * for VMs whose EL1 is AArch32 (the shim enters it in SVC mode with A, I, F masked). The boot vCPU
 * enters at offset 0, vCPUs started by PSCI CPU_ON at offset 0x40 with r0 = context.
 */
	.arch armv7-a
	.arch_extension virt
	.arch_extension sec
	.arm
	.syntax unified

#define STACK_SIZE 0x4000
#define MAX_CPUS 8

	.section .text.boot, "ax"
	.global _start
_start:
	mov	r4, #0			@ boot vCPU
	mov	r5, r0
	b	common

	.org 0x40
	.global secondary_entry
secondary_entry:
	mov	r4, #1
	mov	r5, r0			@ PSCI context
common:
	mrc	p15, 0, r6, c0, c0, 5	@ MPIDR
	and	r6, r6, #0xff
	cmp	r6, #MAX_CPUS
	bhs	hang
	ldr	r1, =stacks
	mov	r2, #STACK_SIZE
	mla	r1, r6, r2, r1
	add	sp, r1, r2
	cmp	r4, #0
	bne	2f
	ldr	r1, =__bss_start
	ldr	r2, =__bss_end
	mov	r3, #0
1:	cmp	r1, r2
	strlo	r3, [r1], #4
	blo	1b
2:	/* Exception stacks for Undefined and Abort modes (the probes take those exceptions), then the vectors. */
	ldr	r1, =exc_stacks
	add	r1, r1, r6, lsl #8
	cps	#0x1b			@ Undefined
	add	sp, r1, #128
	cps	#0x17			@ Abort
	add	sp, r1, #256
	cps	#0x13			@ back to SVC
	ldr	r1, =vectors32
	mcr	p15, 0, r1, c12, c0, 0	@ VBAR
	isb
	mov	r0, r6
	mov	r1, r4
	mov	r2, r5
	bl	guest_main
hang:
	wfe
	b	hang

/*
 * EL1 vectors: the exceptions this guest expects are an UNDEFINED instruction (a semihosting HLT on a host
 * without semihosting, or one the hypervisor injects) and the external aborts the hypervisor injects for
 * the probes of addresses outside the VM's map. Count it, keep the fault status (DFSR or IFSR, 0 for
 * UNDEFINED) and address (DFAR or IFAR), and return past the instruction, or to probe_resume after a
 * prefetch abort. (SVC is not caught: this guest runs in SVC mode.)
 */
	.balign 32
vectors32:
	b	hang			@ reset
	b	undef_entry		@ 0x04 Undefined: LR_und = the instruction + 4
	b	hang			@ 0x08 SVC
	b	pabt_entry		@ 0x0c Prefetch Abort: LR_abt = the instruction + 4
	b	dabt_entry		@ 0x10 Data Abort: LR_abt = the instruction + 8
	b	hang
	b	hang			@ IRQ
	b	hang			@ FIQ

undef_entry:
	push	{r0-r3, lr}
	mov	r1, #0
	mov	r2, #0
	bl	record
	pop	{r0-r3, lr}
	movs	pc, lr

dabt_entry:
	push	{r0-r3, lr}
	mrc	p15, 0, r1, c5, c0, 0	@ DFSR
	mrc	p15, 0, r2, c6, c0, 0	@ DFAR
	bl	record
	pop	{r0-r3, lr}
	subs	pc, lr, #4

pabt_entry:
	push	{r0-r3, lr}
	mrc	p15, 0, r1, c5, c0, 1	@ IFSR
	mrc	p15, 0, r2, c6, c0, 2	@ IFAR
	bl	record
	ldr	r0, =probe_resume
	ldr	r1, [r0]
	mov	r2, #0
	str	r2, [r0]
	cmp	r1, #0
	strne	r1, [sp, #16]		@ return to probe_resume instead (the saved lr)
	pop	{r0-r3, lr}
	movs	pc, lr

/* record: undefs = { count + 1, r1 (status), r2 (address) } as 64-bit words; clobbers r0 and r3. */
record:
	ldr	r0, =undefs
	ldr	r3, [r0]
	add	r3, r3, #1
	str	r3, [r0]
	str	r1, [r0, #8]
	mov	r3, #0
	str	r3, [r0, #12]
	str	r2, [r0, #16]
	str	r3, [r0, #20]
	bx	lr

/* probe_exec(addr): branch to addr; a prefetch abort there resumes after the branch. */
	.global probe_exec
probe_exec:
	push	{r4, lr}
	ldr	r4, =probe_resume
	adr	r1, 1f
	str	r1, [r4]
	blx	r0
1:	mov	r1, #0
	str	r1, [r4]
	pop	{r4, pc}

	.global undefs
	.global probe_resume
	.section .bss
	.balign 8
undefs:
	.space 24		@ count, fault status, fault address (64-bit each, as start.S)
probe_resume:
	.space 4
	.balign 8
exc_stacks:
	.space 256 * MAX_CPUS
	.text

/* call(regs, conduit): r0..r7 from the low words of regs[0..7], hvc #0 (conduit 0) or smc #0, results back zero-extended. */

	.global call
call:
	push	{r4-r11, lr}
	push	{r0}
	mov	r12, r0
	mov	lr, r1
	ldr	r0, [r12, #0]
	ldr	r1, [r12, #8]
	ldr	r2, [r12, #16]
	ldr	r3, [r12, #24]
	ldr	r4, [r12, #32]
	ldr	r5, [r12, #40]
	ldr	r6, [r12, #48]
	ldr	r7, [r12, #56]
	cmp	lr, #2
	beq	5f
	cmp	lr, #3
	beq	6f
	cmp	lr, #0
	bne	3f
	hvc	#0
	b	4f
5:	hvc	#1		@ a non-zero immediate: not an SMCCC call
	b	4f
6:	smc	#1
	b	7f
3:	smc	#0
7:
	/* The instruction after the SMC: it must run exactly once (R10). */
	ldr	r12, =after_smc
	ldr	lr, [r12]
	add	lr, lr, #1
	str	lr, [r12]
4:	pop	{r12}
	mov	lr, #0
	str	r0, [r12, #0]
	str	lr, [r12, #4]
	str	r1, [r12, #8]
	str	lr, [r12, #12]
	str	r2, [r12, #16]
	str	lr, [r12, #20]
	str	r3, [r12, #24]
	str	lr, [r12, #28]
	str	r4, [r12, #32]
	str	lr, [r12, #36]
	str	r5, [r12, #40]
	str	lr, [r12, #44]
	str	r6, [r12, #48]
	str	lr, [r12, #52]
	str	r7, [r12, #56]
	str	lr, [r12, #60]
	pop	{r4-r11, pc}

	.section .bss
	.balign 16
stacks:
	.space STACK_SIZE * MAX_CPUS

	.section .note.GNU-stack, "", %progbits
